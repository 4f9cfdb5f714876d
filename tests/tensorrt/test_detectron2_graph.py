"""The tensorrt target's ONNX of a detectron2 model (its numerics inside the traced glue: anchors,
RPN on logits, ROIAlignV2 with detectron2's level formula, the box head's rules; paste.onnx with
detectron2's rescale and paste), checked and run by onnx.reference with the plugin ops backed by
the reference kernels, against the torch backend. Small images (128 px): the evaluator is numpy.

Tolerances as tests/tensorrt/test_onnx_graph.py's: numpy's float32 convolutions vs torch's differ
by ~1e-6 relative, through seeded logits up to ~20: boxes 1e-3 px, scores and probabilities 1e-4.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import maskrt  # noqa: E402
from maskrt.model.boxes import detectron2_rescale  # noqa: E402
from maskrt.model.transform import preprocess  # noqa: E402
from maskrt.tensorrt import graph as trt_graph  # noqa: E402
from maskrt.tensorrt import schemas  # noqa: E402
from tests.model.detectron2 import weights as W  # noqa: E402
from tests.model.detectron2.compare import assert_masks_agree, match_ranked  # noqa: E402
from tests.tensorrt.reference_ops import graph_ops  # noqa: E402

R18 = "r18_fpn64_c7_agnostic_mask"


@pytest.fixture(scope="module")
def d2_seg(tmp_path_factory):
    path = tmp_path_factory.mktemp("d2") / "model_final.pkl"
    W.save_model_zoo_pkl(W.weights_from_spec(W.load_spec(R18)), path)
    return maskrt.load(path, backend="torch", score_threshold=0.01, min_size=128, max_size=160)


@pytest.fixture(scope="module")
def exported(d2_seg, tmp_path_factory):
    out = tmp_path_factory.mktemp("d2_trt")
    return (trt_graph.export_trt_onnx(d2_seg.backend.model, out / "model.onnx"),
            trt_graph.export_paste_onnx(out / "paste.onnx", mode="detectron2"))


def test_plugin_nodes_carry_detectron2s_numerics(exported):
    model_nodes = trt_graph.check_trt_onnx(exported[0])
    pools = [schemas.node_attributes(n) for n in model_nodes if n.op_type == "MultiLevelRoIAlign"]
    assert len(pools) == 2 and all(a["aligned"] == 1 and a["sampling_ratio"] == 0 and a["level_mapper"] == "detectron2"
                                   for a in pools)
    (paste,) = trt_graph.check_trt_onnx(exported[1])
    assert schemas.node_attributes(paste)["mode"] == "detectron2"


def test_onnx_matches_the_torch_backend(exported, d2_seg):
    from onnx.reference import ReferenceEvaluator

    image = W.synthetic_image(7, 96, 150)
    detector = d2_seg.backend.detector
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    batch, sizes = preprocess([tensor], detector.policy)
    hw = np.array(sizes[0], dtype=np.int64)
    graph = ReferenceEvaluator(str(exported[0]), new_ops=graph_ops())
    boxes, scores, labels, probs = graph.run(None, {"images": batch.numpy(), "image_hw": hw})
    with torch.inference_mode():
        want = [t.numpy() for t in detector.run(batch, sizes)[0]]
    assert len(labels) >= 10
    np.testing.assert_array_equal(labels, want[2])
    np.testing.assert_allclose(boxes, want[0], atol=1e-3, rtol=0)
    np.testing.assert_allclose(scores, want[1], atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs, want[3], atol=1e-4, rtol=0)
    paste = ReferenceEvaluator(str(exported[1]), new_ops=graph_ops())
    boxes_px, masks = paste.run(None, {"mask_probs": probs, "boxes": boxes, "image_hw": hw, "image": image})
    np.testing.assert_allclose(boxes_px, detectron2_rescale(torch.from_numpy(boxes), sizes[0], image.shape[:2]),
                               atol=1e-3, rtol=0)
    dets = d2_seg(image)  # the torch backend end to end (detectron2 drops empty boxes: none here)
    pairs = match_ranked((boxes_px, scores, labels), (dets.boxes, dets.scores, dets.labels), 1e-3, 1e-4)
    assert len(pairs) == len(dets) == len(labels)
    assert_masks_agree(pairs, masks, probs, boxes_px, list(dets.masks), 1e-4)


def test_plugins_run_detectron2s_modes(monkeypatch):
    """The plugins' AOT launches (maskrt.tensorrt.aot.run, Triton under the interpreter) with
    level_mapper and mode "detectron2", against the reference kernels; the PasteMasks aot_impl
    body compiles detectron2's paste kernel for mode "detectron2" (compile stubbed: the real one
    is tests/gpu_verify/test_ptx.py)."""
    from maskrt.kernels.paste.reference import paste as paste_ref
    from maskrt.kernels.roi_align.reference import roi_align as roi_ref
    from maskrt.tensorrt import aot as trt_aot
    from tests.tensorrt.standin import Desc, registered

    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(1, 8, 64 // 2**i, 80 // 2**i, generator=g) for i in range(4)]
    xy = torch.rand(6, 2, generator=g) * 200
    rois = torch.cat([torch.zeros(6, 1), xy, xy + 8 + torch.rand(6, 2, generator=g) * 150], 1)
    attrs = dict(spatial_scales=np.float32(schemas.FPN_SCALES), output_size=7, sampling_ratio=0, aligned=1,
                 canonical_size=224, canonical_level=4, level_mapper="detectron2")
    [pooled] = trt_aot.run(schemas.ROI_ALIGN, [*feats, rois], attrs)
    torch.testing.assert_close(pooled, roi_ref(feats, rois, list(schemas.FPN_SCALES), 7, 0, True,
                                               level_mapper="detectron2"))
    masks = torch.rand(3, 28, 28, generator=g)
    boxes = torch.tensor([[5.0, 4, 90, 70], [30, 20, 110, 95], [-10, 50, 60, 99]])
    [pasted] = trt_aot.run(schemas.PASTE, [masks, boxes, torch.zeros(100, 120, 3, dtype=torch.uint8)],
                           dict(threshold=0.5, mode="detectron2"))
    assert torch.equal(pasted, paste_ref(masks, boxes, 100, 120, 0.5, mode="detectron2"))

    registry, _, _ = registered(monkeypatch)
    launches = []
    compiled = types.SimpleNamespace(metadata=types.SimpleNamespace(name="d2_paste_kernel", num_warps=4, shared=0),
                                     asm={"ptx": "// ptx"})
    monkeypatch.setattr(trt_aot, "compile_launch", lambda launch: launches.append(launch) or compiled)
    registry["maskrt::PasteMasks"]["aot_impl"](Desc((9, 28, 28), "FLOAT"), Desc((9, 4), "FLOAT"),
                                               Desc((480, 640, 3), "UINT8"), 0.5, "detectron2",
                                               (Desc((9, 480, 640), "BOOL"),), 0)
    assert [launch.kernel.fn.__name__ for launch in launches] == ["d2_paste_kernel"]
