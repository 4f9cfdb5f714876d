"""The model deployment's batch body, called directly (no Ray): a batch of mixed sizes and a bad
upload gives each image what `maskrt run --json` gives it alone, and the bad one its refusal."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

import maskrt
from maskrt.options import LoadOptions
from maskrt.data import iter_video_frames
from maskrt.engine.outputs import frame_record
from maskrt.serve.model import ModelReplica, ModelSpec

from .conftest import BUNDLED


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_batch_of_mixed_sizes_equals_one_at_a_time():
    replica = ModelReplica(ModelSpec(str(BUNDLED), load=LoadOptions(min_size=128, max_size=128, num_threads=1, score_threshold=0.5)), max_batch=8,
                           batch_wait_s=0.01)
    small = [s.image for _, s in iter_video_frames(3, size=(96, 128), seed=5)]
    large = next(iter(iter_video_frames(1, size=(120, 160), seed=6)))[1].image
    images = [small[0], large, small[1], small[2]]
    items = [(0.0, png(img), None, f"{i}.png") for i, img in enumerate(images)]
    items.insert(2, (0.0, png(small[0])[:200], None, "cut.png"))
    items.append((0.0, png(small[1]), 0.9, None))
    out = replica.run_batch(items)

    seg = maskrt.load(BUNDLED, min_size=128, max_size=128, num_threads=1, score_threshold=0.5)  # as the replica
    alone = [frame_record(0, None, seg(img), file=f"{i}.png") for i, img in enumerate(images)]
    got = [r for j, r in enumerate(out) if j not in (2, 5)]
    for result, expected in zip(got, alone, strict=True):
        record = result["record"]
        for inst in record["instances"]:
            assert inst.pop("category_name") == seg.classes[inst["category_id"]]
        # one image alone or in a group of its own size: the same padded batch input per image
        assert record == expected
        assert result["timing"]["batch"] == 5 and result["timing"]["infer_s"] > 0
    assert out[2]["status"] == 400 and "does not decode" in out[2]["error"]
    high = out[5]["record"]["instances"]
    assert [i["score"] for i in high] == [i["score"] for i in alone[2]["instances"] if i["score"] > 0.9]
    assert sum(len(r["instances"]) for r in alone) >= 4
