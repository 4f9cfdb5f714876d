"""`--precision int8`: NNCF-quantized CPU engines.

A seeded small model with a tiny calibration folder checks the artifact (manifest, info, the
calibration hash), the refusals and the cache; that its convolutions and matrix products really
run in u8/i8 is read from OpenVINO's runtime (execution) graph on this CPU. Random weights say
nothing about quantization accuracy, so accuracy is checked on the trained bundled model.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nncf
import numpy as np
import pytest
import torch
from PIL import Image

import maskrt
from maskrt.artifact import read_manifest
from maskrt.builders.calibration import CALIBRATION_SEED, resolve_calibration
from maskrt.builders.quantize import runtime_precisions
from maskrt.cli import main
from maskrt.errors import EngineError, MaskrtError
from maskrt.machine import describe
from tests.conftest import random_image

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
COMPUTE_OPS = ("Convolution", "MatMul", "ConvolutionBackpropData")


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    """Three PNGs of different sizes (the dense stage is calibrated at natural sizes)."""
    folder = tmp_path_factory.mktemp("calib")
    for i, size in enumerate([(96, 128), (128, 96), (112, 112)]):
        Image.fromarray(random_image(np.random.default_rng(i), *size)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    """An engine cache of this module's own (the session's is checked for its count elsewhere)."""
    previous, path = os.environ.get("MASKRT_CACHE_DIR"), tmp_path_factory.mktemp("int8_cache")
    os.environ["MASKRT_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("MASKRT_CACHE_DIR")
    else:
        os.environ["MASKRT_CACHE_DIR"] = previous


def load_small_int8(checkpoint: str, calibration_dir: Path):
    return maskrt.load(checkpoint, precision="int8", calibration=str(calibration_dir), min_size=128, max_size=160,
                       score_threshold=0.05)


@pytest.fixture(scope="module")
def int8_engine(small_checkpoint, calibration_dir, int8_cache) -> Path:
    """The int8 engine of the small model, built through maskrt.load (and so cached)."""
    return load_small_int8(small_checkpoint, calibration_dir).backend.engine_dir


def test_manifest_records_precision_nncf_and_the_calibration_set(int8_engine, calibration_dir):
    m = read_manifest(int8_engine)
    assert (m.target, m.precision) == ("cpu", "int8")
    q = m.quantization
    assert q["nncf"] == nncf.__version__ == m.versions["nncf"]
    assert q["calibration"]["size"] == 3 and q["calibration"]["source"] == str(calibration_dir)
    # the hash covers each image's shape and RGB bytes, in sorted-name order (an independent recomputation)
    digest = hashlib.sha256()
    for path in sorted(calibration_dir.iterdir()):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        digest.update(repr(pixels.shape).encode())
        digest.update(pixels.tobytes())
    assert q["calibration"]["sha256"] == digest.hexdigest()
    assert q["stages"] == {"dense": "int8", "box": "int8", "mask": "int8"}
    assert q["samples"]["dense"] == q["samples"]["box"] == 3 and 0 < q["samples"]["mask"] <= 3
    assert set(m.stages) == {"dense", "box", "mask"} and all(m.files.values())


def test_info_shows_the_quantization(int8_engine, capsys):
    assert main(["info", str(int8_engine)]) == 0
    out = capsys.readouterr().out
    digest = read_manifest(int8_engine).quantization["calibration"]["sha256"]
    assert "target:       cpu (int8)" in out
    assert f"NNCF {nncf.__version__} post-training" in out and "dense int8, box int8, mask int8" in out
    assert f"calibration:  3 images" in out and digest[:16] in out
    assert "float layers:" in out


def test_int8_layers_run_in_int8_on_this_cpu(int8_engine):
    """Every convolution / matrix product outside the float groups runs as a u8 or i8 kernel in
    the compiled runtime graph (one runtime node per IR layer: bias, ReLU and the FakeQuantize
    nodes are fused into it), and the float ones in f32."""
    import openvino as ov

    m = read_manifest(int8_engine)
    core = ov.Core()
    print(describe().summary())
    for stage, xml in m.stages.items():
        model = core.read_model(str(int8_engine / xml))
        layers = [op for op in model.get_ordered_ops() if op.get_type_name() in COMPUTE_OPS]
        floats = m.quantization["float_layers"][stage]
        ran = runtime_precisions(core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 2}))
        integer = sum(n for (_, precision), n in ran.items() if precision in ("u8", "i8"))
        print(f"{stage}: {len(layers)} layers, {len(floats)} kept float; runtime {dict(ran)}")
        assert integer == len(layers) - len(floats) > 0
        assert sum(ran.values()) == len(layers)


def test_int8_engine_runs(int8_engine):
    seg = maskrt.load(int8_engine, score_threshold=0.05)
    assert seg.backend.compute_precision == "f32"  # the float layers; the quantized ones run in int8
    image = random_image(np.random.default_rng(5), 100, 140)
    dets = seg(image)
    assert dets.masks.shape == (len(dets), 100, 140) and np.all(np.diff(dets.scores) <= 0)


def test_no_calibration_for_a_user_checkpoint_is_one_line_and_writes_nothing(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "x.maskrt"
    assert main(["build", small_checkpoint, "-o", str(out), "--precision", "int8", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("maskrt: error: --precision int8 needs calibration images")
    assert "--calibration DIR_OR_GLOB" in err[0] and "--calibration synthetic" in err[0]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MaskrtError, match="needs calibration images"):
        maskrt.load(small_checkpoint, precision="int8")
    image = tmp_path / "in.png"
    Image.fromarray(random_image(np.random.default_rng(0), 64, 64)).save(image)
    args = ["run", str(image), "--model", small_checkpoint, "--precision", "int8", "--json", str(tmp_path / "o.jsonl")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs calibration images" in err[0] and sorted(tmp_path.iterdir()) == [image]


@pytest.mark.parametrize("args,message", [
    (["--target", "tensorrt"], "TensorRT INT8 needs explicit Q/DQ quantization (signed, symmetric) and is not built"),
    (["--precision", "fp32", "--calibration", "synthetic"], "apply to --precision int8 only"),
    (["--calibration", "no/such/folder"], "--calibration: input not found"),
    (["--calibration", "synthetic", "--calibration-size", "0"], "--calibration-size must be a positive integer"),
])
def test_int8_refusals(small_checkpoint, tmp_path, capsys, args, message):
    out = tmp_path / "x.maskrt"
    assert main(["build", small_checkpoint, "-o", str(out), "--precision", "int8", "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_synthetic_calibration_is_seeded_apart_and_the_bundled_default():
    bundled = resolve_calibration(None, BUNDLED, 2)
    explicit = resolve_calibration("synthetic", "any.pth", 2)
    assert bundled.source == explicit.source == f"synthetic (seed {CALIBRATION_SEED})"
    assert bundled.sha256() == explicit.sha256() and [im.shape for im in bundled.images()][0][2] == 3
    # disjoint from the validation seed and the training seeds (tools/train_shapes.py: 1000 + step)
    assert CALIBRATION_SEED != 424_242 and CALIBRATION_SEED > 20_000


def test_cache_key_holds_the_precision(small_checkpoint, monkeypatch, tmp_path):
    """maskrt.load(checkpoint, precision=...) caches one engine per precision (and calibration)."""
    import maskrt.builders
    from maskrt.api import cached_cpu_engine

    monkeypatch.setenv("MASKRT_CACHE_DIR", str(tmp_path))
    built = []

    def fake_build(source, out, target, precision, *args, **kwargs):
        built.append((Path(out), precision, kwargs.get("calibration")))
        return Path(out)

    monkeypatch.setattr(maskrt.builders, "build_engine", fake_build)
    for precision, calibration in [("fp32", None), ("fp16", None), ("int8", None), ("int8", "synthetic"),
                                   ("int8", "imgs/")]:
        cached_cpu_engine(small_checkpoint, precision, calibration)
    dirs = [out for out, _, _ in built]
    assert len(set(dirs)) == 5, dirs
    for out, precision, calibration in built:
        assert f"-{precision}-" in out.name and out.parent == tmp_path


def test_load_reuses_the_cached_int8_engine_and_refuses_a_mismatch(int8_engine, int8_cache, small_checkpoint,
                                                                   calibration_dir):
    stamp = (int8_engine / "manifest.json").stat().st_mtime_ns
    seg = load_small_int8(small_checkpoint, calibration_dir)
    assert seg.backend.engine_dir == int8_engine and list(int8_cache.glob("*.maskrt")) == [int8_engine]
    assert (int8_engine / "manifest.json").stat().st_mtime_ns == stamp, "the second load reuses the cached engine"
    with pytest.raises(EngineError, match="was built with --precision int8, not fp32"):
        maskrt.load(int8_engine, precision="fp32")
    with pytest.raises(MaskrtError, match="the torch backend runs the checkpoint in fp32"):
        maskrt.load(small_checkpoint, backend="torch", precision="int8")


def test_compute_precision_of_int8_engines_is_f32_on_every_cpu():
    from maskrt.engine.backends.openvino_backend import compute_precision

    assert compute_precision("int8", ["FP32", "INT8"]) == "f32"
    assert compute_precision("int8", ["FP32", "BF16", "FP16", "INT8"]) == "f32"


def match_detections(want, got) -> list[tuple[int, int, float, float]]:
    """For each detection of `want` (Detections), the best-overlapping one of `got` with the same
    label: (i, j, box IoU, mask IoU); j = -1 when there is none."""
    from torchvision.ops import box_iou

    pairs = []
    ious = box_iou(torch.from_numpy(want.boxes), torch.from_numpy(got.boxes)).numpy() if len(got) else None
    for i in range(len(want)):
        same = [j for j in range(len(got)) if got.labels[j] == want.labels[i]]
        if ious is None or not same:
            pairs.append((i, -1, 0.0, 0.0))
            continue
        j = max(same, key=lambda k: ious[i, k])
        a, b = want.masks[i], got.masks[j]
        pairs.append((i, j, float(ious[i, j]), float((a & b).sum() / max((a | b).sum(), 1))))
    return pairs


def test_int8_engine_keeps_the_bundled_model_s_detections(tmp_path):
    """The trained bundled model, int8 (16 synthetic calibration scenes) vs fp32, on scenes of
    another seed. The fp32 reference is the torch backend, which the fp32 engine reproduces to
    ~1e-5 (test_build.py), so a difference here is quantization's.

    Argued tolerance (not float rounding: 8-bit steps). Activations are quantized per tensor to
    256 levels, weights per output channel (7 bits in each model's first layer, NNCF's overflow
    fix for AVX2): each layer adds an error of ~step/sqrt(12) ~ 0.1% of its range, ~25 such layers
    add up (as a random walk) to ~0.5-1% of the feature ranges at the heads. A confident
    detection's logits (|x| >~ 3) then move by a few hundredths: the same objects are found with
    the same labels, scores moved by <= 0.1, boxes by ~1% of their size plus up to half a pixel
    per side (box IoU >= 0.8 for the smallest, ~10-pixel objects); mask logits (|x| up to ~30
    inside/outside an object) flip only boundary pixels, where the probability is near 0.5: each
    mask keeps IoU >= 0.6 (a 10x10 object gaining or losing its one-pixel rim: 0.64), and >= 0.95
    of all mask pixels overall. No confident int8 detection is new (fp32 score < 0.3 for it).
    Measured on AMD EPYC Zen 3 (AVX2): 27 detections matched, worst box IoU 0.907, worst mask IoU
    0.741, worst score change 0.037, overall mask IoU 0.9785."""
    from maskrt.data import make_scene

    engine = maskrt.load(build_int8_bundled(tmp_path), score_threshold=0.05)
    fp32 = maskrt.load(BUNDLED, backend="torch", score_threshold=0.05)
    matched, worst_box, worst_mask, worst_score, inter, union = 0, 1.0, 1.0, 0.0, 0, 0
    for index in range(6):
        image = make_scene(77_777, index, size=(320, 320)).image
        want_all, got_all = fp32(image), engine(image)
        want, got = want_all.above(0.5), got_all.above(0.5)
        for i, j, box_iou, mask_iou in match_detections(want, got_all):
            assert j >= 0, f"scene {index}: fp32 detection {i} (score {want.scores[i]:.2f}) not found in int8"
            worst_box, worst_mask = min(worst_box, box_iou), min(worst_mask, mask_iou)
            worst_score = max(worst_score, abs(float(got_all.scores[j] - want.scores[i])))
            a, b = want.masks[i], got_all.masks[j]
            matched, inter, union = matched + 1, inter + (a & b).sum(), union + (a | b).sum()
        for i, j, _, _ in match_detections(got, want_all):
            assert j >= 0 and want_all.scores[j] >= 0.3, f"scene {index}: int8 detection {i} is new"
    print(f"{describe().summary()}\nint8 vs fp32: {matched} confident detections matched, worst box IoU "
          f"{worst_box:.3f}, worst mask IoU {worst_mask:.3f}, worst score change {worst_score:.3f}, "
          f"overall mask IoU {inter / union:.4f}")
    assert matched >= 10
    assert worst_box >= 0.8 and worst_score <= 0.1 and worst_mask >= 0.6 and inter / union >= 0.95


def build_int8_bundled(tmp_path: Path) -> Path:
    from maskrt.builders import build_engine

    return build_engine(BUNDLED, tmp_path / "shapes8.maskrt", precision="int8", calibration_size=16, progress=False)
