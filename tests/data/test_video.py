"""Tests of maskrt.data.video: encoding, ground truth, motion, atomic writes."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from pycocotools.coco import COCO

from maskrt.data import decode_flat_ids, generate_video, iter_video_frames
from maskrt.data import video as video_mod

SIZE = (48, 64)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def test_video_decodes_with_stated_format_and_gt(tmp_path):
    path = generate_video(tmp_path / "clip.mp4", num_frames=12, fps=10, size=SIZE, seed=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == Fraction(10)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 12 and frames[0].shape == (*SIZE, 3)

    gt = COCO(str(path.with_suffix(".json")))
    assert gt.dataset["videos"][0] == {"id": 1, "file_name": "clip.mp4", "fps": 10.0,
                                       "num_frames": 12, "height": 48, "width": 64, "seed": 2,
                                       "events": {"crossings": 0, "occluders": 0, "returns": 0,
                                                  "speed_changes": 0, "pan": 0.0}}
    assert sorted(gt.getImgIds()) == list(range(12))
    for index, scene in iter_video_frames(12, SIZE, 2, fps=10):
        img = gt.loadImgs(index)[0]
        assert img["file_name"] == f"frame_{index:06d}" and img["frame_index"] == index
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[index]))
        assert [a["track_id"] for a in anns] == scene.object_ids.tolist()
        for ann, mask in zip(anns, scene.masks):
            assert np.array_equal(gt.annToMask(ann).astype(bool), mask)
        # lossy, but the decoded frame must be close to the rendered one
        assert np.abs(frames[index].astype(int) - scene.image.astype(int)).mean() < 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.json", "clip.mp4"]


@pytest.mark.parametrize("size", [(47, 64), (48, 63), (0, 64)])
def test_odd_size_rejected(tmp_path, size):
    with pytest.raises(ValueError, match="even"):
        generate_video(tmp_path / "v.mp4", num_frames=2, fps=5, size=size)
    assert list(tmp_path.iterdir()) == []


def test_frames_deterministic_and_seed_dependent():
    a = [s.image for _, s in iter_video_frames(3, SIZE, 7)]
    b = [s.image for _, s in iter_video_frames(3, SIZE, 7)]
    c = [s.image for _, s in iter_video_frames(3, SIZE, 8)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_flat_frames_exact_and_same_masks_as_textured():
    flat = iter_video_frames(8, SIZE, 4, fps=5, paint="flat")
    textured = iter_video_frames(8, SIZE, 4, fps=5)
    background = iter_video_frames(8, SIZE, 4, fps=5, paint="background")
    for (_, f), (_, t), (_, b) in zip(flat, textured, background):
        assert np.array_equal(f.masks, t.masks) and np.array_equal(f.object_ids, t.object_ids)
        expected = np.zeros(SIZE, dtype=np.int64)
        for k, m in enumerate(f.masks):
            expected[m] = k + 1
        assert np.array_equal(decode_flat_ids(f.image), expected)
        union = t.masks.any(0)
        assert np.array_equal(t.image[~union], b.image[~union])
        assert (t.image[union] != b.image[union]).any(1).mean() > 0.9


def test_objects_move_enter_and_leave():
    present: dict[int, set[int]] = {}
    moved = False
    previous: dict[int, list[float]] = {}
    for seed in range(3):
        for index, scene in iter_video_frames(30, SIZE, seed, fps=5, paint="flat"):
            for oid, box in zip(scene.object_ids.tolist(), scene.boxes.tolist()):
                key = seed * 1000 + oid
                present.setdefault(key, set()).add(index)
                moved |= key in previous and previous[key] != box
                previous[key] = box
    assert moved
    assert any(0 < len(frames) < 30 for frames in present.values())


def test_failure_leaves_no_files(tmp_path, monkeypatch):
    real = video_mod.scene_annotations

    def flaky(scene, image_id, first_id, track_ids=False):
        if image_id == 3:
            raise RuntimeError("crash mid-video")
        return real(scene, image_id, first_id, track_ids)

    monkeypatch.setattr(video_mod, "scene_annotations", flaky)
    with pytest.raises(RuntimeError, match="crash mid-video"):
        generate_video(tmp_path / "v.mp4", num_frames=6, fps=5, size=SIZE, seed=0)
    assert list(tmp_path.iterdir()) == []
