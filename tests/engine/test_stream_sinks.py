"""Sinks checked through independent readers: PyAV for MP4s, json/pycocotools for JSON files."""

from __future__ import annotations

import json
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from maskrt.engine.stream import CocoResultsSink, JsonLinesSink, VideoSink, pad_to_even

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def work(index, time, image=None, record=None):
    return SimpleNamespace(index=index, time=time, name=None, rendered=image, record=record)


def decode(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(stream)]
        return stream, frames


def test_video_sink_odd_size_padded_and_playable(tmp_path):
    rng = np.random.default_rng(0)
    sink = VideoSink(tmp_path / "out.mp4")
    sink.open(12.5)
    # 16-pixel blocks of random colours: compressible, and any shift would show
    blocks = [rng.integers(30, 225, (23, 41, 3), dtype=np.uint8) for _ in range(5)]
    images = [np.kron(b, np.ones((16, 16, 1), np.uint8))[:359, :641] for b in blocks]
    for i, img in enumerate(images):
        sink.write(work(i, i / 12.5, img))
    assert not (tmp_path / "out.mp4").exists()  # only the .partial name until closed
    sink.close(keep=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    stream, frames = decode(tmp_path / "out.mp4")
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (642, 360) and stream.average_rate == Fraction(25, 2)
    assert len(frames) == 5
    # the padding is one black row and column; the picture itself is where it was
    assert frames[0][1][359:].mean() < 20 and frames[0][1][:, 641:].mean() < 20
    assert np.abs(frames[2][1][:359, :641].astype(int) - images[2]).mean() < 6


def test_video_sink_timestamps_follow_frame_times(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4")
    sink.open(10)
    img = np.zeros((32, 48, 3), np.uint8)
    for index in (0, 1, 4, 5, 9):  # real-time run that dropped frames 2, 3, 6, 7, 8
        sink.write(work(index, index / 10, img))
    sink.close(keep=True)
    stream, frames = decode(tmp_path / "out.mp4")
    times = [float(pts * stream.time_base) for pts, _ in frames]
    assert times == pytest.approx([0.0, 0.1, 0.4, 0.5, 0.9])


def test_discarded_sinks_leave_nothing(tmp_path):
    video, jsonl = VideoSink(tmp_path / "v.mp4"), JsonLinesSink(tmp_path / "r.jsonl")
    video.open(5)
    video.write(work(0, 0.0, np.zeros((8, 8, 3), np.uint8)))
    jsonl.write(work(0, 0.0, record={"frame": 0, "time": 0.0, "instances": []}))
    video.close(keep=False)
    jsonl.close(keep=False)
    never = VideoSink(tmp_path / "never.mp4")
    never.close(keep=True)
    assert list(tmp_path.iterdir()) == []


def test_pad_to_even_keeps_even_frames():
    img = np.ones((4, 6, 3), np.uint8)
    assert pad_to_even(img) is img
    assert pad_to_even(np.ones((5, 7, 3), np.uint8)).shape == (6, 8, 3)


def test_coco_results_sink_loads_in_pycocotools(tmp_path):
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    inst = {"bbox": [3, 2, 6, 3], "score": 0.8, "category_id": 1,
            "segmentation": {"size": [10, 12], "counts": rle["counts"].decode()}}
    sink = CocoResultsSink(tmp_path / "res.json")
    for i, instances in enumerate([[inst], [], [inst, inst]]):
        sink.write(work(i, None, record={"frame": i, "time": None, "instances": instances}))
    sink.close(keep=True)
    results = json.loads((tmp_path / "res.json").read_text())
    assert [r["image_id"] for r in results] == [0, 2, 2]
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "height": 10, "width": 12} for i in range(3)],
                  "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    gt.createIndex()
    loaded = gt.loadRes(str(tmp_path / "res.json"))
    assert np.array_equal(loaded.annToMask(loaded.loadAnns([1])[0]), mask)



def encoded_on(path, cpus: set[int]):
    """40 frames of moving texture (240x320) through VideoSink, this thread allowed `cpus` only
    (x264 counts the CPUs of the thread that opens the encoder)."""
    import os

    yy, xx = np.mgrid[0:240, 0:320]
    rng = np.random.default_rng(0)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        sink = VideoSink(path)
        sink.prepare()
        sink.open(10.0)
        for i in range(40):
            image = np.sin((xx + 5 * i) / 17.0) * 80 + np.cos((yy - 3 * i) / 11.0) * 80 + 128
            image = (image + rng.integers(0, 20, (240, 320))).clip(0, 255).astype(np.uint8)
            sink.write(work(i, i / 10.0, np.repeat(image[:, :, None], 3, axis=2)))
        sink.close(True)
    finally:
        os.sched_setaffinity(0, before)
    return path.read_bytes()


def test_video_bytes_are_a_function_of_the_frames(tmp_path):
    """Issue 22, item 12 (MP4s of `maskrt batch` and `maskrt run` differing in a few frames):
    x264's default thread count follows the CPUs a process may use, its output follows its
    thread count, and on AVX-512 CPUs its output changed from one encoder to the next within a
    process. The same frames encoded four times in this process, on one CPU and on all of them:
    the same bytes each time."""
    import os

    cpus = os.sched_getaffinity(0)
    first = encoded_on(tmp_path / "0.mp4", cpus)
    for i, allowed in enumerate(({min(cpus)}, cpus, {min(cpus)}), start=1):
        assert encoded_on(tmp_path / f"{i}.mp4", allowed) == first, f"encoding {i} differs"
