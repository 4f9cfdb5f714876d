"""`maskrt` CLI on still images and checkpoints: outputs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from maskrt.cli import main
from tests.cli_runner import run_in_process
from tests.conftest import random_image


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskrt.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, size in enumerate([(120, 160), (90, 70)]):
        Image.fromarray(random_image(np.random.default_rng(i), *size)).save(folder / f"img{i}.png")
    return folder


def test_run_folder_writes_jsonl_and_pngs(small_checkpoint, image_dir, tmp_path):
    out_json, out_dir = tmp_path / "res.jsonl", tmp_path / "vis"
    code = main(["run", str(image_dir), "--model", small_checkpoint, "--json", str(out_json), "--out",
                 str(out_dir), "--score-threshold", "0.05", "--quiet"])
    assert code == 0
    records = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1]
    for record, size in zip(records, [(120, 160), (90, 70)]):
        assert set(record) >= {"frame", "time", "instances"}
        for inst in record["instances"]:
            assert inst["score"] > 0.05 and len(inst["bbox"]) == 4
            assert mask_utils.decode(inst["segmentation"]).shape == size
    assert sorted(p.name for p in out_dir.iterdir()) == ["img0.png.png", "img1.png.png"]  # input name + .png
    assert np.asarray(Image.open(out_dir / "img1.png.png")).shape == (90, 70, 3)


def test_run_glob(small_checkpoint, image_dir, tmp_path):
    out_json = tmp_path / "g.jsonl"
    assert main(["run", str(image_dir / "img1.*"), "--model", small_checkpoint, "--json", str(out_json),
                 "--quiet"]) == 0
    assert len(out_json.read_text().splitlines()) == 1


@pytest.mark.parametrize("case", ["missing_model", "bad_model", "missing_source", "empty_folder", "no_outputs"])
def test_bad_input_is_one_line_exit_2_and_no_output(case, small_checkpoint, image_dir, tmp_path):
    model, source = small_checkpoint, str(image_dir)
    if case == "missing_model":
        model = str(tmp_path / "nope.pth")
    elif case == "bad_model":
        (tmp_path / "bad.pth").write_text("garbage")
        model = str(tmp_path / "bad.pth")
    elif case == "missing_source":
        source = str(tmp_path / "nothing.png")
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        source = str(tmp_path / "empty")
    out_json = tmp_path / "out.jsonl"
    extra = [] if case == "no_outputs" else ["--json", str(out_json)]
    result = run_in_process("run", source, "--model", model, *extra)
    assert result.returncode == 2
    assert result.stderr.startswith("maskrt: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("out.jsonl*")), "no output, not even a partial one"


def test_unreadable_image_in_folder_is_skipped_and_reported(small_checkpoint, image_dir, tmp_path):
    (image_dir / "broken.png").write_bytes(b"\x89PNG garbage")
    out_json = tmp_path / "r.jsonl"
    result = run_in_process("run", str(image_dir), "--model", small_checkpoint, "--json", str(out_json), "--quiet")
    assert result.returncode == 1
    assert "cannot read image" in result.stderr and "Traceback" not in result.stderr
    assert len(out_json.read_text().splitlines()) == 2


def test_info_describes_checkpoint(small_checkpoint, capsys):
    assert main(["info", small_checkpoint]) == 0
    out = capsys.readouterr().out
    assert "ResNet-18" in out and "circle" in out and "min 320" in out


@pytest.mark.parametrize("command", ["build", "run", "batch", "eval", "serve"])
@pytest.mark.parametrize("value", ["0", "-5", "abc", "2.5", ""])
def test_proposals_that_are_not_a_positive_integer_are_one_line(command, value, tmp_path):
    args = {"build": ["build", "m.pth", "-o", str(tmp_path / "e.maskrt")],
            "run": ["run", "v.mp4", "--model", "m.pth", "--json", str(tmp_path / "o.jsonl")],
            "batch": ["batch", "v.mp4", "--model", "m.pth", "--out-dir", str(tmp_path / "out")],
            "eval": ["eval", "--model", "m.pth", "--coco", "a.json", "--images", "imgs"],
            "serve": ["serve", "--model", "m.pth"]}[command]
    result = run_cli(*args, "--proposals", value)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"maskrt: error: --proposals must be a positive integer, got {value!r}"]
    assert list(tmp_path.iterdir()) == []


def test_help_for_every_command():
    for cmd in ([], ["run"], ["info"]):
        result = run_cli(*cmd, "--help")
        assert result.returncode == 0 and "usage: maskrt" in result.stdout
