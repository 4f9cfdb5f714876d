"""`maskrt run` on videos: outputs read back with PyAV and pycocotools, bad inputs, interruption.

Videos are tiny (64x96, 10-30 frames) and the model is the small seeded one at 128-192 px.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import maskrt
from maskrt.cli import main
from maskrt.data import generate_video
from tests.cli_runner import run_in_process
from tests.engine.test_sources import truncated_video, zero_frame_video

SIZE = (64, 96)
SMALL = ["--min-size", "128", "--max-size", "192"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="module")
def model(small_checkpoint):
    """The small checkpoint, its CPU engine built (and cached) before any test times a run."""
    maskrt.load(small_checkpoint, min_size=128, max_size=192)
    return small_checkpoint


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskrt.cli", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


def decode_video(path):
    """(stream facts, frames) as PyAV reads them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return {"codec": s.codec_context.name, "size": (s.height, s.width), "rate": s.average_rate}, frames


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def mask_sizes(records):
    return {mask_utils.decode({"size": i["segmentation"]["size"], "counts": i["segmentation"]["counts"].encode()}).shape
            for r in records for i in r["instances"]}


def odd_video(path, pix_fmt: str, frames: int = 3):
    """A 641x359 FFV1 video (sizes H.264 yuv420p cannot hold) with smooth frames."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=5)
        s.width, s.height, s.pix_fmt = 641, 359, pix_fmt
        for i in range(frames):
            img = np.zeros((359, 641, 3), np.uint8)
            img[60:200, 100 + 40 * i:300 + 40 * i] = (200, 60, 30)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def test_video_outputs_match_the_input(model, tmp_path):
    clip = generate_video(tmp_path / "clip.mp4", num_frames=12, fps=12, size=SIZE, seed=3)
    out = tmp_path / "out"
    code = main(["run", str(clip), "--model", model, *SMALL, "--out", str(out / "v.mp4"), "--json",
                 str(out / "r.jsonl"), "--coco", str(out / "c.json"), "--stats", str(out / "s.json"),
                 "--batch", "2", "--show-fps", "--score-threshold", "0.2", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["c.json", "r.jsonl", "s.json", "v.mp4"]
    facts, frames = decode_video(out / "v.mp4")
    assert facts == {"codec": "h264", "size": SIZE, "rate": Fraction(12)} and len(frames) == 12
    records = read_jsonl(out / "r.jsonl")
    assert [(r["frame"], r["time"]) for r in records] == [(i, pytest.approx(i / 12, abs=1e-6)) for i in range(12)]
    assert mask_sizes(records) <= {SIZE} and sum(len(r["instances"]) for r in records) > 0
    coco = json.loads((out / "c.json").read_text())
    assert len(coco) == sum(len(r["instances"]) for r in records)
    stats = json.loads((out / "s.json").read_text())
    assert stats["frames"] == 12 and stats["dropped"] == 0
    for stage in ("decode", "preprocess", "infer", "postprocess", "render", "encode"):
        assert stats["stages"][stage]["count"] == 12 and stats["stages"][stage]["p99_ms"] >= 0


def test_realtime_file_drops_frames_and_says_so(model, tmp_path):
    clip = generate_video(tmp_path / "fast.mp4", num_frames=30, fps=300, size=SIZE, seed=1)
    out = tmp_path / "out"
    code = main(["run", str(clip), "--model", model, *SMALL, "--realtime", "--out", str(out / "v.mp4"),
                 "--json", str(out / "r.jsonl"), "--stats", str(out / "s.json"), "--quiet"])
    assert code == 0
    stats = json.loads((out / "s.json").read_text())
    frames_done = [r["frame"] for r in read_jsonl(out / "r.jsonl")]
    assert stats["dropped"] > 0 and stats["frames"] + stats["dropped"] == 30
    assert frames_done == sorted(frames_done) and frames_done[-1] == 29 and len(frames_done) == stats["frames"]
    assert len(decode_video(out / "v.mp4")[1]) == len(frames_done)


@pytest.mark.parametrize("pix_fmt", ["bgr0", "gray"])
def test_odd_size_and_grayscale_video(model, tmp_path, pix_fmt):
    src = odd_video(tmp_path / "odd.mkv", pix_fmt)
    code = main(["run", str(src), "--model", model, *SMALL, "--out", str(tmp_path / "o.mp4"), "--json",
                 str(tmp_path / "o.jsonl"), "--score-threshold", "0.0", "--quiet"])
    assert code == 0
    facts, frames = decode_video(tmp_path / "o.mp4")
    assert facts["size"] == (360, 642) and len(frames) == 3  # padded by one row and column for H.264
    records = read_jsonl(tmp_path / "o.jsonl")
    assert len(records) == 3 and mask_sizes(records) == {(359, 641)}


def test_grayscale_and_rgba_images(model, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((41, 67), 90, np.uint8)).save(folder / "gray.png")
    Image.fromarray(np.full((35, 50, 4), 120, np.uint8)).save(folder / "rgba.png")
    code = main(["run", str(folder), "--model", model, *SMALL, "--out", str(tmp_path / "vis"), "--json",
                 str(tmp_path / "r.jsonl"), "--score-threshold", "0.0", "--quiet"])
    assert code == 0
    assert [r["file"].endswith(n) for r, n in zip(read_jsonl(tmp_path / "r.jsonl"), ("gray.png", "rgba.png"))] == [
        True, True]
    assert np.asarray(Image.open(tmp_path / "vis" / "gray.png.png")).shape == (41, 67, 3)
    assert np.asarray(Image.open(tmp_path / "vis" / "rgba.png.png")).shape == (35, 50, 3)


@pytest.mark.parametrize("case", ["missing", "not_video", "zero_frames", "out_not_mp4"])
def test_bad_video_input_is_one_line_and_leaves_nothing(model, tmp_path, case):
    src = tmp_path / "in.mp4"
    out = ["--out", str(tmp_path / "res" / "o.mp4"), "--json", str(tmp_path / "res" / "o.jsonl")]
    if case == "not_video":
        src.write_text("this is a text file\n")
    elif case == "zero_frames":
        src = zero_frame_video(tmp_path / "in.y4m")
    elif case == "out_not_mp4":
        src = generate_video(src, num_frames=2, fps=5, size=SIZE, seed=0)
        out[1] = str(tmp_path / "res" / "o.avi")
    result = run_in_process("run", str(src), "--model", model, *SMALL, *out, "--quiet")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("maskrt: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


def test_truncated_video_processes_what_decodes(model, tmp_path):
    src = truncated_video(tmp_path)
    out = tmp_path / "res"
    result = run_in_process("run", str(src), "--model", model, *SMALL, "--out", str(out / "o.mp4"), "--json",
                            str(out / "o.jsonl"), "--quiet")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "of 20 frames could be decoded" in result.stderr
    records = read_jsonl(out / "o.jsonl")
    assert 0 < len(records) < 20 and [r["frame"] for r in records] == list(range(len(records)))
    assert len(decode_video(out / "o.mp4")[1]) == len(records)
    assert sorted(p.name for p in out.iterdir()) == ["o.jsonl", "o.mp4"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_playable_outputs(model, tmp_path, sig):
    clip = generate_video(tmp_path / "long.mp4", num_frames=150, fps=10, size=SIZE, seed=2)
    out = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "maskrt.cli", "run", str(clip), "--model", model, *SMALL,
                             "--out", str(out / "o.mp4"), "--json", str(out / "o.jsonl"), "--score-threshold", "0",
                             "--quiet"], stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(out.glob(".o.jsonl.*.partial"))  # the unique temporary name (maskrt.safeio)
        if partial and len(partial[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    records = read_jsonl(out / "o.jsonl")
    assert 3 <= len(records) < 150 and [r["frame"] for r in records] == list(range(len(records)))
    facts, frames = decode_video(out / "o.mp4")
    assert len(frames) == len(records) and facts["size"] == SIZE
    assert sorted(p.name for p in out.iterdir()) == ["o.jsonl", "o.mp4"]
