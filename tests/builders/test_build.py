"""`maskrt build`: the engine artifact, CPU-engine parity with the torch backend, and refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import maskrt
from maskrt.artifact import read_manifest
from maskrt.builders import build_engine
from maskrt.hashing import sha256_file
from maskrt.errors import EngineError, MaskrtError
from maskrt.machine import describe
from tests.cli_runner import run_in_process
from tests.conftest import cached_engine_dir, random_image
from tests.detections_compare import assert_detections_agree, maskrt_expected


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_in_process(*args)


@pytest.fixture(scope="module")
def engine_dir(small_checkpoint):
    """The small model's CPU engine as maskrt.load builds and caches it (the tests here copy it
    before they alter anything)."""
    return cached_engine_dir(small_checkpoint)


# The f32 CPU engine (OpenVINO / oneDNN convolutions) and the torch backend compute the same
# network with differently ordered float32 sums, and oneDNN picks its kernels by ISA (AVX2,
# AVX-512), so only rounding differs. Measured on seeded ResNet-50 weights (AMD EPYC Zen 3, AVX2):
# dense-stage outputs differ by <= 1e-5 of their range (4-10e-6: ~60 layers, each adding
# ~sqrt(K) * 2^-24 ~ 3e-6 relative), boxes by <= 1.3e-3 px, scores by 1.4e-5.
# Bounds: boxes are decoded from deltas differing by ~3e-6 times box sizes of up to 512 px, plus
# the proposals' own differences: 1e-2 px; scores (softmax of logits differing by ~1e-5): 1e-4.
# Masks are compared at the engine's boxes (tests/detections_compare.py), which the torch
# backend gets back through its float32 resize ratio to ~1 ulp (6e-5 px at 512 px, 1.5e-5
# feature px at stride 4). Seeded features change by up to their own size per feature pixel, so
# the pooled features differ by ~2.5e-5 relative (1e-5 from the dense stage, 1.5e-5 from that
# ulp); seeded mask logits reach ~200, so they differ by <= 5e-3 and the probabilities by
# <= 1.25e-3 (sigmoid' <= 1/4): 2e-3. Measured: 2.1e-4.
ENGINE_TOLERANCE = {"box_atol": 1e-2, "score_atol": 1e-4, "prob_atol": 2e-3}


def assert_close_detections(engine, torch_seg, image):
    agreement = assert_detections_agree(engine(image), maskrt_expected(torch_seg, image), **ENGINE_TOLERANCE)
    print(agreement)
    return agreement


def test_manifest_describes_the_engine(engine_dir, small_checkpoint):
    m = read_manifest(engine_dir)
    assert (m.target, m.precision, m.format_version) == ("cpu", "fp32", 1)
    assert m.classes[1:] == ["circle", "square", "triangle", "star"]
    assert (m.input_policy["min_size"], m.input_policy["max_size"]) == (320, 512)
    assert m.source["sha256"] == sha256_file(__import__("pathlib").Path(small_checkpoint))
    assert set(m.stages) == {"dense", "box", "mask"}
    for name, digest in m.files.items():
        assert sha256_file(engine_dir / name) == digest
    for name in ("dense", "box", "mask"):
        model = onnx.load(str(engine_dir / "onnx" / f"{name}.onnx"))
        onnx.checker.check_model(model)
    dims = onnx.load(str(engine_dir / "onnx" / "dense.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"], "dynamic N, H, W"


@pytest.mark.parametrize("size", [(240, 320), (333, 250), (64, 500), (700, 900)])
def test_cpu_engine_matches_torch_backend(engine_dir, small_checkpoint, size):
    engine = maskrt.load(engine_dir, score_threshold=0.01)
    torch_seg = maskrt.load(small_checkpoint, backend="torch", score_threshold=0.01)
    assert engine.backend.name == "openvino"
    image = random_image(np.random.default_rng(size[0] + size[1]), *size)
    assert_close_detections(engine, torch_seg, image)


@pytest.mark.slow
def test_cpu_engine_matches_torch_on_resnet50(tmp_path):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(3)
    oracle = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5)
    torch.save(oracle.state_dict(), tmp_path / "r50.pth")
    out = build_engine(tmp_path / "r50.pth", tmp_path / "r50.maskrt", min_size=320, max_size=512, progress=False)
    engine = maskrt.load(out, score_threshold=0.05)
    torch_seg = maskrt.load(tmp_path / "r50.pth", backend="torch", score_threshold=0.05, min_size=320, max_size=512)
    for size in [(300, 400), (420, 260)]:
        image = random_image(np.random.default_rng(size[0]), *size)
        assert_close_detections(engine, torch_seg, image)


def test_load_checkpoint_builds_and_caches_cpu_engine(small_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKRT_CACHE_DIR", str(tmp_path))  # its own cache: other tests add engines to the shared one
    seg = maskrt.load(small_checkpoint)
    assert seg.backend.name == "openvino"
    built = list(tmp_path.glob("small-*.maskrt"))  # one engine per checkpoint, whatever the sizes
    assert len(built) == 1
    stamp = (built[0] / "manifest.json").stat().st_mtime_ns
    maskrt.load(small_checkpoint, min_size=256)
    assert list(tmp_path.glob("small-*.maskrt")) == built
    assert (built[0] / "manifest.json").stat().st_mtime_ns == stamp, "second load reuses the cached engine"


def _copy_engine(engine_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy.maskrt"
    shutil.copytree(engine_dir, copy)
    return copy


def test_refuses_other_format_version(engine_dir, tmp_path):
    copy = _copy_engine(engine_dir, tmp_path)
    data = json.loads((copy / "manifest.json").read_text())
    data["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineError, match="format version 99.*rebuild"):
        maskrt.load(copy)


def test_refuses_payload_with_wrong_hash(engine_dir, tmp_path):
    copy = _copy_engine(engine_dir, tmp_path)
    with open(copy / "box.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(EngineError, match="box.bin does not match its sha256"):
        maskrt.load(copy)


def test_refuses_missing_payload(engine_dir, tmp_path):
    copy = _copy_engine(engine_dir, tmp_path)
    (copy / "mask.xml").unlink()
    with pytest.raises(EngineError, match="mask.xml is missing"):
        maskrt.load(copy)


def test_refuses_target_this_machine_cannot_run(engine_dir, tmp_path):
    copy = _copy_engine(engine_dir, tmp_path)
    data = json.loads((copy / "manifest.json").read_text())
    data["target"] = "tensorrt"
    data["stages"] = {"model": "onnx/dense.onnx"}  # stands in for a plan: hashed, loaded by the backend only
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(MaskrtError, match="TensorRT is not installed|no CUDA GPU"):
        maskrt.load(copy)
    with pytest.raises(EngineError, match="cannot run on the openvino backend"):
        maskrt.load(copy, backend="openvino")


def test_failed_build_leaves_nothing(small_checkpoint, tmp_path, monkeypatch):
    from maskrt.builders import openvino_build

    def broken(*args, **kwargs):
        raise RuntimeError("simulated converter crash")

    monkeypatch.setattr(openvino_build, "convert_to_ir", broken)
    with pytest.raises(RuntimeError):
        build_engine(small_checkpoint, tmp_path / "x.maskrt", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_build_shows_progress_and_info(small_checkpoint, tmp_path):
    """--proposals: recorded in the manifest (thresholds.rpn, pre-NMS scaled with it), shown by
    `maskrt info`, the engine's default when loaded, and overridden by load(proposals=)."""
    result = run_cli("build", small_checkpoint, "-o", str(tmp_path / "e.maskrt"), "--proposals", "200")
    assert result.returncode == 0, result.stderr
    assert "[1/5]" in result.stderr and "[5/5]" in result.stderr
    info = run_cli("info", str(tmp_path / "e.maskrt"))
    assert info.returncode == 0 and "target:       cpu (fp32)" in info.stdout and "dense.bin" in info.stdout
    assert "proposals:    200 per image after NMS (IoU 0.7), 200 per level before" in info.stdout
    rpn = read_manifest(tmp_path / "e.maskrt").thresholds["rpn"]
    assert (rpn["post_nms_top_n"], rpn["pre_nms_top_n"]) == (200, 200)
    assert maskrt.load(tmp_path / "e.maskrt").backend.detector.proposals.params.post_nms_top_n == 200
    params = maskrt.load(tmp_path / "e.maskrt", proposals=50).backend.detector.proposals.params
    assert (params.post_nms_top_n, params.pre_nms_top_n) == (50, 50)


def test_cli_tensorrt_target_says_what_is_missing(small_checkpoint, tmp_path):
    result = run_cli("build", small_checkpoint, "-o", str(tmp_path / "t.maskrt"), "--target", "tensorrt")
    assert result.returncode == 2
    assert result.stderr.count("maskrt: error:") == 1 and "TensorRT is not installed" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "t.maskrt").exists()
    only = run_cli("build", small_checkpoint, "-o", str(tmp_path / "o.maskrt"), "--target", "tensorrt",
                   "--onnx-only", "--quiet")
    assert only.returncode == 0, only.stderr
    manifest = read_manifest(tmp_path / "o.maskrt")
    assert manifest.target == "tensorrt" and sorted(manifest.files) == ["model.onnx", "paste.onnx"]


@pytest.mark.parametrize("args,message", [
    (["build", "missing.pth", "-o", "x.maskrt"], "checkpoint not found"),
    (["info", "nothing.maskrt"], "checkpoint not found"),
])
def test_cli_bad_inputs(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run_in_process(*args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("maskrt: error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_cpu_engine_matches_torch_on_bundled_model():
    from maskrt.data import make_scene

    bundled = __import__("pathlib").Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
    engine = maskrt.load(bundled)  # the session's cached build (the thread-count test's too)
    torch_seg = maskrt.load(bundled, backend="torch")
    for index, size in enumerate([(320, 320), (240, 320), (480, 270)]):
        image = make_scene(55_555, index, size=size).image
        assert_close_detections(engine, torch_seg, image)


@pytest.mark.parametrize("capabilities,fp16_path", [
    (["FP32", "INT8", "BIN", "EXPORT_IMPORT"], "f32"),  # AVX2-only (e.g. AMD Zen 3)
    (["FP32", "BF16", "FP16", "INT8", "BIN", "EXPORT_IMPORT"], "bf16"),  # AVX512_BF16 / AMX
])
def test_fp16_engines_compute_in_bf16_only_where_the_cpu_has_it(capabilities, fp16_path):
    from maskrt.engine.backends.openvino_backend import compute_precision

    assert compute_precision("fp16", capabilities) == fp16_path
    assert compute_precision("fp32", capabilities) == "f32"


def test_fp16_cpu_engine_keeps_the_bundled_model_s_detections(tmp_path):
    """`--precision fp16`: fp16 weights, bf16 compute where the CPU has it, f32 elsewhere.

    f32 path (no native bf16): the engine computes in f32 with weights rounded to fp16. The
    bundled checkpoint is stored in fp16, but BatchNorm is folded into the convolutions before
    storage, so the folded weights are rounded anew: by <= 2^-11 ~ 4.9e-4 relative each. That is
    <= 5e-4 relative per layer, ~2.5e-3 after ResNet-18-FPN's ~25 layers (errors of independent
    roundings add as a random walk); trained logits (|x| <~ 10) then move by <= 2.5e-2 and
    probabilities and scores by <= 1/4 of that (sigmoid/softmax slopes): 5e-3 for scores; mask
    probabilities 2e-2 (their logits reach ~30); boxes (deltas / 10 times sizes <= 320 px): 0.1 px.
    Measured on AMD EPYC Zen 3 (AVX2): 1.4e-2 px, 5e-4, 5e-3.
    bf16 path: not bit-exact (8-bit mantissas), but every confident torch detection is found
    again with the same label, box IoU >= 0.9, masks agreeing on >= 95% of their pixels overall
    (>= 0.6 IoU each: a 50-pixel object loses a few boundary pixels to bf16 rounding)."""
    from maskrt.data import make_scene

    bundled = __import__("pathlib").Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
    engine = maskrt.load(build_engine(bundled, tmp_path / "shapes16.maskrt", precision="fp16", progress=False))
    torch_seg = maskrt.load(bundled, backend="torch")
    images = [make_scene(77_777, index, size=(320, 320)).image for index in range(4)]
    path = engine.backend.compute_precision
    print(f"{describe().summary()}: fp16 engine computes in {path}")
    if path == "f32":
        for image in images:
            assert_detections_agree(engine(image), maskrt_expected(torch_seg, image), box_atol=0.1, score_atol=5e-3,
                                    prob_atol=2e-2)
    else:
        assert path == "bf16"
        assert_bf16_keeps_detections(engine, torch_seg, images)


def assert_bf16_keeps_detections(engine, torch_seg, images) -> None:
    from torchvision.ops import box_iou

    matched, inter, union = 0, 0, 0
    for image in images:
        want, got = torch_seg(image).above(0.5), engine(image)
        if len(want) == 0:
            continue
        assert len(got) > 0
        ious = box_iou(torch.from_numpy(want.boxes), torch.from_numpy(got.boxes)).numpy()
        for i in range(len(want)):
            j = int(ious[i].argmax())
            assert ious[i, j] >= 0.9 and got.labels[j] == want.labels[i]
            a, b = want.masks[i], got.masks[j]
            assert (a & b).sum() / max((a | b).sum(), 1) >= 0.6
            matched, inter, union = matched + 1, inter + (a & b).sum(), union + (a | b).sum()
    print(f"bf16 engine: {matched} detections matched, overall mask IoU {inter / union:.4f}")
    assert matched >= 8 and inter / union >= 0.95
