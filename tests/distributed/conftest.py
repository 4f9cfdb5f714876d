"""Fixtures for `maskrt batch`: the bundled model's engine (built once), a small archive of
inputs, `maskrt run`'s own outputs for each of them (the parity oracle), and checks that an
output folder holds every output exactly once and nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maskrt
from maskrt.cli import main
from maskrt.data import generate_video
from maskrt.distributed.inputs import output_name

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
SIZE = (64, 96)  # the engine's 64/96 policy leaves 64x96 frames unresized: cheap on 2 cores
SCORE = "0.3"


@pytest.fixture(scope="session")
def small_engine(tmp_path_factory) -> Path:
    """The bundled shapes model as a CPU engine with a 64/96 input policy, built once a session."""
    from maskrt.builders import build_engine

    folder = tmp_path_factory.mktemp("batch_engine")
    return Path(build_engine(BUNDLED, folder / "shapes64.maskrt", "cpu", "fp32", 64, 96, progress=False))


def image_folder(folder: Path, count: int, seed: int) -> Path:
    """`count` generated shapes scenes as PNGs (names sort in generation order)."""
    from maskrt.data import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(make_scene(seed, i, SIZE).image).save(folder / f"img{i:03d}.png")
    return folder


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> dict[str, Path]:
    """Inputs (read-only for the tests): six 4-frame videos, two of them `clip.mp4` in different
    folders, and a folder of 5 images."""
    root = tmp_path_factory.mktemp("archive")
    inputs = {}
    for i in range(6):
        path = root / ("a/clip.mp4", "b/clip.mp4")[i] if i < 2 else root / "c" / f"clip{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        inputs[f"v{i}"] = generate_video(path, num_frames=4, fps=10, size=SIZE, seed=10 + i)
        path.with_suffix(".json").unlink(missing_ok=True)  # the generator's ground truth: not an input
    inputs["imgs"] = image_folder(root / "imgs", 5, seed=3)
    return inputs


@pytest.fixture(scope="session")
def reference(small_engine, archive, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """What `maskrt run SOURCE --json --coco [--out]` writes for each input (1 inference thread,
    as the batch workers use): input key -> {"jsonl", "coco.json"[, "mp4"]: bytes}."""
    folder = tmp_path_factory.mktemp("reference")
    refs = {}
    for key, path in archive.items():
        out = folder / key
        args = ["run", str(path), "--model", str(small_engine), "--threads", "1", "--score-threshold", SCORE,
                "--json", str(out / "r.jsonl"), "--coco", str(out / "r.coco.json"), "--quiet"]
        if key != "imgs":
            args += ["--out", str(out / "r.mp4")]
        assert main(args) == 0
        refs[key] = {p.name[2:]: p.read_bytes() for p in out.iterdir()}
    return refs


def name_of(path: Path) -> str:
    return output_name("images" if path.is_dir() else "video", os.path.abspath(path))


def expected_files(paths, video: bool = True, coco: bool = True) -> set[str]:
    names = set()
    for path in paths:
        name = name_of(path)
        names |= {f"{name}.jsonl", f"{name}.done.json"}
        names |= {f"{name}.coco.json"} if coco else set()
        names |= {f"{name}.mp4"} if video and not path.is_dir() else set()
    return names


def assert_exactly_once(out: Path, paths, video: bool = True, coco: bool = True) -> None:
    """Every output of every input exists once under its fixed name; nothing else is left: no
    temporary or partial file anywhere, and of the working state only the driver's lock file."""
    assert sorted(p.name for p in out.iterdir() if p.name != ".maskrt-batch") == sorted(
        expected_files(paths, video, coco))
    assert [p.name for p in (out / ".maskrt-batch").iterdir()] == ["lock"]
    leftovers = [p for p in out.rglob("*") if p.suffix in (".tmp", ".partial") or ".partial" in p.name]
    assert leftovers == []


def assert_matches_reference(out: Path, archive: dict, reference: dict, keys, video: bool = True,
                             coco: bool = True) -> None:
    """The batch's outputs are byte for byte those `maskrt run` wrote for the same input."""
    for key in keys:
        name = name_of(archive[key])
        for ext, data in reference[key].items():
            if (ext == "mp4" and not video) or (ext == "coco.json" and not coco):
                continue
            assert (out / f"{name}.{ext}").read_bytes() == data, f"{key}: {ext} differs from maskrt run's"


def read_summary(path: Path) -> dict:
    summary = json.loads(path.read_text())
    summary["by_spec"] = {r["spec"]: r for r in summary["results"]}
    return summary


def record(out: Path, path: Path) -> dict:
    return json.loads((out / f"{name_of(path)}.done.json").read_text())


def corrupt_png(path: Path) -> Path:
    """A file named .png that is not an image."""
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 300, dtype=np.uint8).tobytes())
    return path
