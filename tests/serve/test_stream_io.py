"""Stream outputs that survive restarts, and the looped file source (no Ray needed).

Oracles: json.loads on every line, PyAV decoding the clip and the MP4 segments."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import av
import numpy as np
import pytest
from PIL import Image

from maskrt.data import generate_video
from maskrt.serve.stream_io import AppendJsonLinesSink, LatestFrameSink, LoopingVideoSource, SegmentedVideoSink


def work(index, time=None, rendered=None, payload="x"):
    record = {"frame": index, "time": time, "instances": [{"bbox": [0, 0, 1, 1], "note": payload}]}
    return SimpleNamespace(index=index, time=time, record=record, rendered=rendered)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_continues_after_a_crash_mid_line(tmp_path):
    path = tmp_path / "cam.jsonl"
    sink = AppendJsonLinesSink(path, "cam")
    sink.open(10.0)
    for i in range(3):
        sink.write(work(i, i / 10))
    # a process killed here: no close(), and half a line written after the last full one
    with open(path, "ab") as f:
        f.write(b'{"frame":3,"session":0,"stre')
    restarted = AppendJsonLinesSink(path, "cam")
    restarted.open(10.0)
    for i in range(2):  # the new session's source counts from 0 again
        restarted.write(work(i, i / 10))
    restarted.close(True)
    records = lines(path)  # every line parses
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert [r["session"] for r in records] == [0, 0, 0, 1, 1]
    assert {r["stream"] for r in records} == {"cam"} and all("wall_time" in r for r in records)
    assert records[3]["instances"] == work(0).record["instances"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return generate_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=5, fps=10, size=(32, 48), seed=1)


def test_looping_source_replays_the_file(clip):
    with av.open(str(clip)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    source = LoopingVideoSource(clip)
    assert source.fps == 10 and not source.live
    stop = threading.Event()
    frames = []
    for frame in source.frames(stop):
        frames.append(frame)
        if len(frames) == 12:
            stop.set()
    assert [f.index for f in frames] == list(range(12))
    times = [f.time for f in frames]
    # 0.1 s apart across the loop seams too: the file's timestamps are multiples of 1/10 s in its
    # time base (exact in float64 to ~1e-16, far inside 1e-9)
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-9)
    for f in frames:
        np.testing.assert_array_equal(f.image, decoded[f.index % 5])
    assert source.loops == 2


def test_segments_rotate_and_each_plays(tmp_path):
    folder = tmp_path / "cam"
    folder.mkdir()
    (folder / "segment_00007.mp4").write_bytes(b"")  # an earlier run's: numbering goes on from it
    (folder / "segment_00008.mp4.partial").write_bytes(b"broken")  # a killed run's: removed
    sink = SegmentedVideoSink(folder, seconds=1.0)
    sink.open(10.0)
    rng = np.random.default_rng(0)
    for i in range(25):
        sink.write(work(i, i / 10, rendered=rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)))
    sink.close(True)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["segment_00007.mp4", "segment_00008.mp4", "segment_00009.mp4", "segment_00010.mp4"]
    counts = []
    for name in names[1:]:
        with av.open(str(folder / name)) as c:
            counts.append(sum(1 for _ in c.decode(c.streams.video[0])))
    assert counts == [10, 10, 5]


def test_latest_frame_is_the_newest_jpeg():
    sink = LatestFrameSink()
    assert sink.latest() is None and sink.age() is None
    image = np.zeros((24, 40, 3), np.uint8)
    image[:, 20:] = 200
    sink.write(work(0, rendered=image))
    sink.write(work(1, rendered=image))
    seq, jpeg = sink.latest()
    assert seq == 1 and sink.latest(after=1) is None and sink.latest(after=0)[0] == 1
    decoded = np.asarray(Image.open(__import__("io").BytesIO(jpeg)).convert("RGB")).astype(int)
    assert decoded.shape == (24, 40, 3)
    # JPEG (quality 80) of a two-tone image: the flat areas away from the edge come back within a
    # few levels (quantisation of a constant 8x8 block keeps its DC term to within ~2 levels)
    assert np.abs(decoded[:, :12] - 0).max() <= 4 and np.abs(decoded[:, 28:] - 200).max() <= 4
