"""The tensorrt target's ONNX, verified without TensorRT or a GPU (docs/ARCHITECTURE.md, "Verifying GPU code on a CPU").

- the export-friendly graph (builders/trt_graph.TensorRTGraph) equals model.detector.run;
- the exported ONNX passes onnx.checker (full) and strict shape inference, its plugin nodes
  validate against tensorrt/schemas.py and the maskrt domain is declared;
- it runs under onnx.reference.ReferenceEvaluator with the plugin ops backed by the reference
  kernels and matches the torch backend (the small seeded model; the bundled model if present);
- the fp16 variant exports and checks;
- the same graphs with the plugin ops computed by their ahead-of-time launches (the plan's
  kernels and arguments, under the Triton interpreter) match the torch backend too;
- tensorrt/plugins.py: its registrations are generated from the schemas and their signatures
  follow tensorrt.plugin's rules (a stand-in module checks them).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (the kernels import it lazily)

import inspect  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import maskrt  # noqa: E402
from maskrt import kernels  # noqa: E402
from maskrt.tensorrt import graph as trt_graph  # noqa: E402
from maskrt.tensorrt import plugins as trt_plugins  # noqa: E402
from maskrt.tensorrt import schemas  # noqa: E402
from maskrt.kernels.dispatch import _REGISTRY  # noqa: E402
from maskrt.model.transform import preprocess  # noqa: E402
from tests.conftest import random_image  # noqa: E402
from tests.detections_compare import Found, assert_detections_agree, maskrt_expected  # noqa: E402
from tests.tensorrt.reference_ops import ConvTranspose, graph_ops  # noqa: E402
from tests.tensorrt.standin import Desc as _Desc, registered  # noqa: E402

BUNDLED = Path(maskrt.__file__).resolve().parent / "assets" / "shapes_r18fpn64.safetensors"
SIZE_POLICY = dict(min_size=128, max_size=160)  # small images: the ReferenceEvaluator is pure numpy


def torch_segmenter(checkpoint) -> maskrt.Segmenter:
    return maskrt.load(checkpoint, backend="torch", score_threshold=0.01, **SIZE_POLICY)


def to_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)


@pytest.fixture(scope="module")
def small_seg(small_checkpoint):
    return torch_segmenter(small_checkpoint)


@pytest.fixture(scope="module")
def exported(small_seg, tmp_path_factory):
    out = tmp_path_factory.mktemp("trt_onnx")
    return (trt_graph.export_trt_onnx(small_seg.backend.model, out / "model.onnx"),
            trt_graph.export_paste_onnx(out / "paste.onnx"))


@pytest.fixture
def torch_ops_kernels(monkeypatch):
    """A kernel selection `torch_ops` that calls torch.ops.maskrt.* (what TensorRTGraph traces)."""
    monkeypatch.setitem(_REGISTRY, "torch_ops", {op: getattr(torch.ops.maskrt, op) for op in ("roi_align", "nms",
                                                                                              "paste")})
    return "torch_ops"


# --- schemas ------------------------------------------------------------------------------------

def test_schemas_make_and_validate_nodes():
    for schema in schemas.SCHEMAS.values():
        assert schema.plugin_id == f"maskrt::{schema.op_type}" and schema.domain == "maskrt"
        node = schemas.make_node(schema, [s.name for s in schema.inputs], [s.name for s in schema.outputs])
        assert schemas.validate_node(node) is schema
        assert schemas.node_attributes(node) == {a.name: a.default for a in schema.attributes}
    with pytest.raises(ValueError, match="no attribute"):
        schemas.make_node(schemas.NMS, ["b", "s", "c"], ["k", "n", "w"], iou=0.5)
    with pytest.raises(ValueError, match="must be an int"):
        schemas.make_node(schemas.NMS, ["b", "s", "c"], ["k", "n", "w"], max_output=2.5)
    with pytest.raises(ValueError, match="takes 3 inputs"):
        schemas.make_node(schemas.NMS, ["b", "s"], ["k", "n", "w"])
    bad = schemas.make_node(schemas.PASTE, ["m", "b", "c"], ["o"])
    [threshold] = [a for a in bad.attribute if a.name == "threshold"]
    threshold.CopyFrom(onnx.helper.make_attribute("threshold", 1))  # an INT where the schema says FLOAT
    with pytest.raises(ValueError, match="schema wants FLOAT"):
        schemas.validate_node(bad)


# --- the graph in eager mode ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(96, 150), (128, 100)])
def test_eager_graph_equals_detector_run(small_seg, torch_ops_kernels, size):
    model = small_seg.backend.model
    batch, sizes = preprocess([to_chw(random_image(np.random.default_rng(size[0]), *size))], model.policy)
    with torch.inference_mode():
        with kernels.use(torch_ops_kernels):  # the custom ops the traced graph records: bit-identical
            graph_out = trt_graph.TensorRTGraph(model)(batch, torch.tensor(sizes[0]))
            expected = model.detector.run(batch, sizes)[0]
        reference = model.detector.run(batch, sizes)[0]  # reference kernels: rounding apart
    assert len(graph_out[0]) > 0
    for got, want in zip(graph_out, expected):
        assert got.dtype == want.dtype and torch.equal(got, want)
    assert torch.equal(graph_out[2], reference[2])
    for got, want in zip(graph_out, reference):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_graph_runs_the_models_own_glue(small_seg, monkeypatch):
    """The TensorRT graph has no detector glue of its own: it is Detector.run (the code every
    backend runs), so the two cannot drift. A changed glue reaches the graph, and the ONNX."""
    from maskrt.model.network import Detector
    from maskrt.model.rpn import ProposalFilter

    model = small_seg.backend.model
    calls = []
    real = ProposalFilter.one_image

    def spy(self, *args):
        calls.append(len(args[0]))  # the RPN levels it was given
        return real(self, *args)[:7]  # a changed glue: at most 7 proposals

    monkeypatch.setattr(ProposalFilter, "one_image", spy)
    batch, sizes = preprocess([to_chw(random_image(np.random.default_rng(5), 96, 150))], model.policy)
    with torch.inference_mode():
        boxes = trt_graph.TensorRTGraph(model)(batch, torch.tensor(sizes[0]))[0]
        eager = model.detector.run(batch, sizes)[0][0]
    assert calls == [5, 5] and torch.equal(boxes, eager) and len(boxes) <= 7 * (model.config.num_classes - 1)
    own = {name for name, value in vars(trt_graph.TensorRTGraph).items() if callable(value)}
    assert own <= {"__init__", "forward", "_check_scales"}  # nothing that decodes, filters or selects
    assert isinstance(trt_graph.TensorRTGraph(model).detector, Detector)


def test_eager_graph_refuses_nonstandard_fpn_scales(small_seg):
    model = small_seg.backend.model
    batch = torch.zeros(1, 3, 96, 160)  # resized height 65 < 75: torchvision would pool P2 at scale 1/2
    with torch.inference_mode(), pytest.raises(ValueError, match="standard FPN scales"):
        trt_graph.TensorRTGraph(model)(batch, torch.tensor([65, 160]))


# --- the exported ONNX --------------------------------------------------------------------------------

def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_onnx_passes_checker_shape_inference_and_schemas(exported, small_seg):
    model_path, paste_path = exported
    nodes = trt_graph.check_trt_onnx(model_path)
    assert sorted(n.op_type for n in nodes) == ["BatchedNMS", "BatchedNMS", "MultiLevelRoIAlign",
                                                "MultiLevelRoIAlign"]
    assert [n.op_type for n in trt_graph.check_trt_onnx(paste_path)] == ["PasteMasks"]
    model = onnx.load(str(model_path))
    assert {o.domain: o.version for o in model.opset_import}["maskrt"] == 1
    assert _dims(model.graph.input[0]) == [1, 3, "height", "width"], "batch 1, dynamic H and W"
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    shapes = {v.name: v for v in inferred.graph.value_info}
    channels = small_seg.backend.model.config.fpn_channels
    pooled = [_dims(shapes[n.output[0]])[1:] for n in nodes if n.op_type == "MultiLevelRoIAlign"]
    assert sorted(pooled) == [[channels, 7, 7], [channels, 14, 14]]
    for n in nodes:
        if n.op_type == "BatchedNMS":
            keep, count = shapes[n.output[0]].type.tensor_type, shapes[n.output[1]].type.tensor_type
            assert (keep.elem_type, len(keep.shape.dim)) == (onnx.TensorProto.INT64, 1)
            assert (count.elem_type, len(count.shape.dim)) == (onnx.TensorProto.INT32, 0)


@pytest.mark.parametrize("tamper,message", [
    (lambda n: n.attribute.append(onnx.helper.make_attribute("extra", 1)), "extra"),
    (lambda n: [a.CopyFrom(onnx.helper.make_attribute(a.name, 7.0)) for a in n.attribute if a.type == a.INT],
     "Mismatched attribute type"),
])
def test_checker_rejects_bad_plugin_nodes(exported, tmp_path, tamper, message):
    """onnx skips unregistered custom-domain ops; with the schemas registered it checks them."""
    model = onnx.load(str(exported[0]))
    tamper(next(n for n in model.graph.node if n.op_type == "MultiLevelRoIAlign"))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(Exception, match=message):
        trt_graph.check_trt_onnx(tmp_path / "bad.onnx")


def test_checker_rejects_wrong_plugin_input_types(exported, tmp_path):
    model = onnx.load(str(exported[0]))
    nms = next(n for n in model.graph.node if n.op_type == "BatchedNMS")
    nms.input[2] = nms.input[1]  # float scores as the int64 classes input
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(Exception, match="classes typestr: tensor\\(int64\\)"):
        trt_graph.check_trt_onnx(tmp_path / "bad.onnx")


def test_onnx_plugin_attributes_come_from_the_model(exported, small_seg):
    params = small_seg.backend.model.detector
    nodes = [n for n in onnx.load(str(exported[0])).graph.node if n.domain == "maskrt"]
    nms = [schemas.node_attributes(n) for n in nodes if n.op_type == "BatchedNMS"]
    assert [a["max_output"] for a in nms] == [params.proposals.params.post_nms_top_n,
                                             params.detection_params.detections_per_img]
    assert nms[1]["iou_threshold"] == pytest.approx(params.detection_params.nms_thresh)
    for n in nodes:
        if n.op_type == "MultiLevelRoIAlign":
            attrs = schemas.node_attributes(n)
            assert attrs["spatial_scales"] == schemas.FPN_SCALES and attrs["aligned"] == 0
            assert attrs["sampling_ratio"] == params.detection_params.sampling_ratio


def run_reference(model_path, paste_path, seg, image: np.ndarray, plugins: str = "reference"):
    """Both graphs under onnx's ReferenceEvaluator; returns (graph outputs, paste outputs, batch, sizes)."""
    from onnx.reference import ReferenceEvaluator

    batch, sizes = preprocess([to_chw(image)], seg.backend.model.policy)
    hw = np.array(sizes[0], dtype=np.int64)
    graph = ReferenceEvaluator(str(model_path), new_ops=graph_ops(plugins))
    boxes, scores, labels, mask_probs = graph.run(None, {"images": batch.numpy(), "image_hw": hw})
    paste = ReferenceEvaluator(str(paste_path), new_ops=graph_ops(plugins))
    pasted = paste.run(None, {"mask_probs": mask_probs, "boxes": boxes, "image_hw": hw, "image": image})
    return (boxes, scores, labels, mask_probs), pasted, batch, sizes


def assert_matches_torch_backend(model_path, paste_path, seg, image: np.ndarray, min_detections: int = 1,
                                 plugins: str = "reference"):
    (boxes, scores, labels, mask_probs), (boxes_px, masks), batch, sizes = run_reference(
        model_path, paste_path, seg, image, plugins)
    with torch.inference_mode():
        want = [t.numpy() for t in seg.backend.model.detector.run(batch, sizes)[0]]
    assert len(labels) >= min_detections
    np.testing.assert_array_equal(labels, want[2])
    np.testing.assert_allclose(boxes, want[0], atol=1e-3, rtol=0)  # resized-image pixels
    np.testing.assert_allclose(scores, want[1], atol=1e-4, rtol=0)
    np.testing.assert_allclose(mask_probs, want[3], atol=1e-4, rtol=0)
    # End to end against the torch backend; the paste graph's masks at the graph's boxes against
    # the torch backend's probabilities for those boxes, wherever rounding (1e-4: numpy's float32
    # convolutions vs torch's, ~1e-6 relative, through seeded logits up to ~20) cannot decide them.
    expected = maskrt_expected(seg, image)
    assert masks.shape == (len(labels), *image.shape[:2]) and masks.dtype == np.bool_
    assert_detections_agree(Found(boxes_px, scores, labels, mask_probs, masks), expected, box_atol=1e-3,
                            score_atol=1e-4, prob_atol=1e-4)


def test_onnx_runs_on_cpu_and_matches_torch_backend(exported, small_seg):
    image = random_image(np.random.default_rng(7), 96, 150)
    assert_matches_torch_backend(*exported, small_seg, image, min_detections=10)


@pytest.mark.slow
def test_the_plans_plugin_launches_match_the_torch_backend(exported, small_checkpoint, tmp_path):
    """The graphs with each plugin op computed by its ahead-of-time launch (the kernel and int32
    arguments the plan holds; maskrt.tensorrt.aot.run under the interpreter): the plan, but for
    TensorRT's own layers, end to end on the CPU. 150 proposals per level (the interpreter's NMS
    walk costs a few ms per candidate)."""
    from maskrt.model import RPNParams

    seg = torch_segmenter(small_checkpoint)
    seg.backend.model.detector.proposals.params = RPNParams(pre_nms_top_n=150, post_nms_top_n=150)
    model_path = trt_graph.export_trt_onnx(seg.backend.model, tmp_path / "model.onnx")
    image = random_image(np.random.default_rng(7), 96, 150)
    assert_matches_torch_backend(model_path, exported[1], seg, image, min_detections=10, plugins="aot")


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model maskrt/assets/shapes_r18fpn64.safetensors is absent")
def test_bundled_model_onnx_matches_torch_backend(tmp_path):
    from maskrt.data.shapes import make_scene

    seg = torch_segmenter(BUNDLED)
    paths = (trt_graph.export_trt_onnx(seg.backend.model, tmp_path / "model.onnx"),
             trt_graph.export_paste_onnx(tmp_path / "paste.onnx"))
    for path in paths:
        trt_graph.check_trt_onnx(path)
    assert_matches_torch_backend(*paths, seg, make_scene(11, 0, size=(120, 160)).image)


@pytest.mark.parametrize("shape, attrs, vectorised", [
    ((3, 5, 4, 6), {"strides": [2, 2], "kernel_shape": [2, 2]}, True),  # the mask head's upsampling
    ((2, 4, 3, 5), {"strides": [3, 2], "kernel_shape": [3, 2]}, True),
    ((2, 4, 3, 5), {"strides": [2, 2], "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, False),  # onnx's own
])
def test_fast_conv_transpose_is_onnx_s(shape, attrs, vectorised, monkeypatch):
    """The tests' vectorised ConvTranspose against onnx's reference implementation, one node run by
    ReferenceEvaluator each way (float32 sums over at most 5 input channels in another order: a few
    ulp of values ~1)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops import op_conv_transpose

    rng = np.random.default_rng(3)
    n, c, h, w = shape
    kh, kw = attrs["kernel_shape"]
    x = rng.standard_normal(shape, dtype=np.float32)
    weight = rng.standard_normal((c, 7, kh, kw), dtype=np.float32)
    bias = rng.standard_normal(7, dtype=np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in "xwb"]
    model = helper.make_model(helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, None)]), opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": x, "w": weight, "b": bias}
    want, = ReferenceEvaluator(model).run(None, feeds)
    if vectorised:  # onnx's scatter is not called
        monkeypatch.setattr(op_conv_transpose, "col2im_naive_implementation", None)
    ours, = ReferenceEvaluator(model, new_ops=[ConvTranspose]).run(None, feeds)
    assert ours.shape == want.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)


def test_fp16_onnx_exports_and_checks(small_seg, tmp_path):
    path = trt_graph.export_trt_onnx(small_seg.backend.model, tmp_path / "model16.onnx", half=True)
    nodes = trt_graph.check_trt_onnx(path)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [
        onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT]
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.value_info}
    pooled = [inferred[n.output[0]] for n in nodes if n.op_type == "MultiLevelRoIAlign"]
    assert [p.type.tensor_type.elem_type for p in pooled] == [onnx.TensorProto.FLOAT16] * 2


# --- tensorrt/plugins.py ---------------------------------------------------------------------------

def test_plugin_table_is_generated_from_schemas():
    table = trt_plugins.plugin_table()
    assert set(table) == {"maskrt::MultiLevelRoIAlign", "maskrt::BatchedNMS", "maskrt::PasteMasks"}
    for schema in schemas.SCHEMAS.values():
        entry = table[schema.plugin_id]
        assert entry["inputs"] == [s.name for s in schema.inputs]
        assert entry["outputs"] == [s.name for s in schema.outputs]
        assert list(entry["attributes"]) == list(schema.attr_names)
        assert all(len(c.split(", ")) == len(schema.inputs) + len(schema.outputs) for c in entry["autotune"])
    assert table["maskrt::MultiLevelRoIAlign"]["attributes"]["spatial_scales"] == "npt.NDArray[np.float32]"
    assert table["maskrt::MultiLevelRoIAlign"]["autotune"] == ["FP32, FP32, FP32, FP32, FP32, FP32",
                                                              "FP16, FP16, FP16, FP16, FP32, FP16"]
    assert table["maskrt::BatchedNMS"]["size_tensors"] == ["num_kept"]
    assert table["maskrt::BatchedNMS"]["autotune"][0] == "FP32, FP32, INT64, INT64, INT32, INT64"
    assert len(table["maskrt::PasteMasks"]["autotune"]) == 6  # 2 float types x 3 canvas types


def test_register_plugins_without_tensorrt_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a machine without TensorRT
    monkeypatch.setattr(trt_plugins, "_registered", False)
    with pytest.raises(ImportError):
        trt_plugins.register_plugins()


def test_register_plugins_signatures_and_output_descriptors(monkeypatch):
    registry, _, _ = registered(monkeypatch)
    assert set(registry) == {s.plugin_id for s in schemas.SCHEMAS.values()}
    for schema in schemas.SCHEMAS.values():
        names = [s.name for s in schema.inputs]
        assert set(registry[schema.plugin_id]) == {"register", "autotune", "aot_impl"}  # no JIT implementation
        assert list(inspect.signature(registry[schema.plugin_id]["autotune"]).parameters) == [*names, "outputs"]
        combos = registry[schema.plugin_id]["autotune"](*[None] * (len(names) + 1))
        assert [c[1] for c in combos] == trt_plugins.autotune_combinations(schema)

    f = [_Desc((1, 64, 32 // s, 40 // s), "FP16") for s in (1, 2, 4, 8)]
    pooled = registry["maskrt::MultiLevelRoIAlign"]["register"](*f, _Desc((300, 5), "FP32"),
                                                                np.float32(schemas.FPN_SCALES), 7, 2, 0, 224, 4,
                                                                "torchvision")
    assert (pooled.shape_expr, pooled.dtype) == ((300, 64, 7, 7), "FP16")
    keep, count, scratch = registry["maskrt::BatchedNMS"]["register"](_Desc((500, 4)), _Desc((500,)), _Desc((500,)),
                                                                      0.5, 100)
    assert count.upper_bound == 100 and keep.shape_expr == (("size_tensor", 100),) and keep.dtype == "INT64"
    assert scratch.shape_expr == (500 + 2048,) and scratch.dtype == "INT64"  # keys, then their merge
    _, count, scratch = registry["maskrt::BatchedNMS"]["register"](_Desc((5000, 4)), _Desc((5000,)),
                                                                   _Desc((5000,)), 0.5, -1)
    assert count.upper_bound == 5000 and scratch.shape_expr == (5000 + 3 * 2048,)
    pasted = registry["maskrt::PasteMasks"]["register"](_Desc((9, 28, 28)), _Desc((9, 4)), _Desc((480, 640, 3)), 0.5,
                                                        "torchvision")
    assert (pasted.shape_expr, pasted.dtype) == ((9, 480, 640), "BOOL")
