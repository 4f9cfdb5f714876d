"""Sources: still images (image_paths/iter_images), video files, URLs with reconnect, classification.

Facts come from outside the code under test: the generator's clip parameters (frame count, fps),
PyAV's own reading of the files, and scripted fake connections for the URL source.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
from PIL import Image

from maskrt.data import generate_video
from maskrt.engine.sources.images import image_paths, iter_images
from maskrt.engine.stream import ArraySource, ImageSource, describe_kind, open_source
from maskrt.engine.sources.video import UrlSource, VideoFileSource, camera_input
from maskrt.errors import InputError

SIZE = (64, 96)


def faststart_copy(src, dst) -> None:
    """Remux an MP4 with its index first, so a truncated copy still opens (the index says how
    many frames there should be)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)


def truncated_video(tmp_path, num_frames=20, keep=0.6):
    """A generated clip with its index first, cut to `keep` of its bytes."""
    clip = generate_video(tmp_path / "clip.mp4", num_frames=num_frames, fps=10, size=SIZE, seed=5)
    full = tmp_path / "full.mp4"
    faststart_copy(clip, full)
    data = full.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[:int(len(data) * keep)])
    return cut


def zero_frame_video(path):
    """A y4m file with a header and no frames: a video stream with zero frames."""
    path.write_text("YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg\n")
    return path


def test_image_paths_and_iter_images(tmp_path):
    for name, mode in (("b.png", "L"), ("a.png", "RGBA"), ("c.txt", None)):
        if mode:
            Image.new(mode, (7, 5)).save(tmp_path / name)
        else:
            (tmp_path / name).write_text("x")
    assert [p.name for p in image_paths(tmp_path)] == ["a.png", "b.png"]
    assert [p.name for p in image_paths(str(tmp_path / "*.png"))] == ["a.png", "b.png"]
    shapes = [img.shape for _, img in iter_images(tmp_path)]
    assert shapes == [(5, 7, 3), (5, 7, 3)]
    with pytest.raises(InputError, match="not found"):
        image_paths(tmp_path / "missing.png")


def test_describe_kind(tmp_path):
    (tmp_path / "v.mkv").write_bytes(b"")
    assert describe_kind(0) == "camera" and describe_kind("1") == "camera"
    assert describe_kind("rtsp://cam/stream") == "url" and describe_kind("https://x/y.m3u8") == "url"
    assert describe_kind(str(tmp_path)) == "images" and describe_kind("imgs/*.jpg") == "images"
    assert describe_kind(tmp_path / "a.PNG") == "images"
    assert describe_kind(tmp_path / "v.mkv") == "video"
    assert describe_kind([np.zeros((2, 2, 3), np.uint8)]) == "arrays"


def test_video_file_frames_match_generator(tmp_path):
    clip = generate_video(tmp_path / "clip.mp4", num_frames=12, fps=10, size=SIZE, seed=1)
    source = open_source(clip)
    assert isinstance(source, VideoFileSource) and not source.live
    assert source.fps == 10 and source.expected_frames == 12 and source.size == SIZE
    frames = list(source.frames(threading.Event()))
    source.close()
    assert [f.index for f in frames] == list(range(12))
    assert [f.time for f in frames] == pytest.approx([i / 10 for i in range(12)])
    with av.open(str(clip)) as c:
        expected = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected))
    assert source.problems == []


def test_truncated_video_reports_missing_frames(tmp_path):
    source = open_source(truncated_video(tmp_path))
    frames = list(source.frames(threading.Event()))
    assert 0 < len(frames) < 20
    assert len(source.problems) == 1 and f"only {len(frames)} of 20 frames" in source.problems[0]


@pytest.mark.parametrize("content", [b"hello, not a video", b""])
def test_not_a_video_is_one_line_error(tmp_path, content):
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read .*notes.mp4") as info:
        open_source(path)
    assert "\n" not in str(info.value)


def test_zero_frames_and_missing_file(tmp_path):
    source = open_source(zero_frame_video(tmp_path / "empty.y4m"))
    with pytest.raises(InputError, match="no frame could be decoded .*no frames"):
        list(source.frames(threading.Event()))
    with pytest.raises(InputError, match="input not found"):
        open_source(tmp_path / "missing.mp4")


def test_image_source_skips_unreadable(tmp_path):
    Image.new("L", (9, 4), 7).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"broken")
    Image.new("RGBA", (3, 3)).save(tmp_path / "c.png")
    source = open_source(tmp_path)
    assert isinstance(source, ImageSource)
    frames = list(source.frames(threading.Event()))
    assert [(f.index, f.image.shape, f.name.endswith(n)) for f, n in zip(frames, ("a.png", "c.png"))] == [
        (0, (4, 9, 3), True), (2, (3, 3, 3), True)]
    assert len(source.problems) == 1 and "b.png" in source.problems[0]


def test_array_sources():
    one = open_source(np.zeros((5, 6, 3), np.uint8))
    assert isinstance(one, ArraySource) and len(list(one.frames(threading.Event()))) == 1
    many = ArraySource(np.zeros((4, 5, 6, 3), np.uint8), fps=2)
    assert [f.time for f in many.frames(threading.Event())] == [0, 0.5, 1.0, 1.5]


def test_camera_input_on_linux(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    assert camera_input(2) == ("/dev/video2", "v4l2")
    monkeypatch.setattr("sys.platform", "win32")
    with pytest.raises(InputError, match="Linux"):
        camera_input(0)


# -- URL source: reconnect with backoff, through a scripted fake connection --------------------

class _FakeFrame:
    def __init__(self, value: int):
        self.value = value

    def to_ndarray(self, format: str):
        assert format == "rgb24"
        return np.full((4, 6, 3), self.value, np.uint8)


class _FakeContainer:
    def __init__(self, values, error):
        self.values, self.error, self.closed = values, error, False
        self.streams = SimpleNamespace(video=[SimpleNamespace(average_rate=Fraction(25), guessed_rate=None)])

    def decode(self, stream):
        yield from (_FakeFrame(v) for v in self.values)
        if self.error is not None:
            raise self.error

    def close(self):
        self.closed = True


class _Script:
    """opener(url, options, timeout): each call takes the next step: an exception to raise, or
    (frame values, exception raised after them or None)."""

    def __init__(self, steps):
        self.steps, self.calls, self.containers = list(steps), [], []

    def __call__(self, url, options, timeout):
        self.calls.append((url, options, timeout))
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        self.containers.append(_FakeContainer(*step))
        return self.containers[-1]


class _RecordingStop(threading.Event):
    """A stop event whose waits return at once, recording the delays asked for."""

    def __init__(self):
        super().__init__()
        self.waits = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return self.is_set()


def _reset():
    return av.error.ConnectionResetError(104, "Connection reset by peer")


def test_url_reconnects_with_backoff_and_keeps_counting():
    script = _Script([([1, 2], _reset()), OSError("refused"), ([3], _reset()), ([4, 5], None), OSError("gone"),
                      OSError("gone"), OSError("gone")])
    log = []
    source = UrlSource("rtsp://cam/live", opener=script, max_attempts=3, backoff_s=0.5, log=log.append)
    stop = _RecordingStop()
    frames = list(source.frames(stop))
    assert [f.image[0, 0, 0] for f in frames] == [1, 2, 3, 4, 5]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    # failure counts: lost(1) refused(2) lost-after-frames(1) ended(1) gone(2) gone(3) gone(4 > 3: give up)
    assert stop.waits == [0.5, 1.0, 0.5, 0.5, 1.0, 2.0]
    assert len(log) == 6 and "reconnecting in 0.5 s (attempt 1 of 3 in a row, reconnect 1 of 50)" in log[0] and "refused" in log[1]
    assert "stream ended" in log[3]
    assert source.reconnects == 6 and len(source.problems) == 1 and "giving up" in source.problems[0]
    assert all(c.closed for c in script.containers)
    assert script.calls[0] == ("rtsp://cam/live", {"rtsp_transport": "tcp"}, 10.0)


def test_url_never_reachable_is_an_input_error():
    script = _Script([OSError("Connection refused")] * 3)
    source = UrlSource("rtsp://nowhere/x", opener=script, max_attempts=2, backoff_s=1, log=lambda m: None)
    stop = _RecordingStop()
    with pytest.raises(InputError, match="giving up after 2 failed reconnects .*refused"):
        list(source.frames(stop))
    assert stop.waits == [1, 2]


def test_http_stream_ends_at_its_end_and_backoff_is_capped():
    source = UrlSource("http://host/clip.mp4", opener=_Script([([7, 8], None)]), log=lambda m: None)
    assert [f.index for f in source.frames(_RecordingStop())] == [0, 1] and source.reconnects == 0
    script = _Script([OSError("x")] * 6)
    capped = UrlSource("udp://h:1", opener=script, max_attempts=5, backoff_s=1, max_backoff_s=3, log=lambda m: None)
    stop = _RecordingStop()
    with pytest.raises(InputError):
        list(capped.frames(stop))
    assert stop.waits == [1, 2, 3, 3, 3]


# -- an http file that drops mid-way (issue 16, item 6) ----------------------------------------

class _TimedFrame(_FakeFrame):
    def __init__(self, value: int):
        super().__init__(value)
        self.time = value / 10  # the stream timestamp PyAV gives a decoded frame


class _TimedScript(_Script):
    def __call__(self, url, options, timeout):
        container = super().__call__(url, options, timeout)
        container.decode = lambda stream, c=container: self._decode(c)
        return container

    @staticmethod
    def _decode(container):
        yield from (_TimedFrame(v) for v in container.values)
        if container.error is not None:
            raise container.error


def test_http_file_reopened_after_a_drop_never_repeats_a_frame():
    """Each reopen starts the file again; frames already delivered are skipped by timestamp."""
    script = _TimedScript([(list(range(5)), _reset()), (list(range(8)), _reset()), (list(range(12)), None)])
    source = UrlSource("http://host/clip.ts", opener=script, backoff_s=0.1, log=lambda m: None)
    frames = list(source.frames(_RecordingStop()))
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(12))
    assert [f.index for f in frames] == list(range(12)) and source.skipped == 5 + 8
    assert source.reconnects == 2 and source.problems == []
    assert script.calls[0][1]["reconnect"] == "1", "FFmpeg resumes at the byte reached when it can"


def test_a_drop_at_the_same_place_every_time_gives_up_with_a_count():
    """The issue's server: the first half of the file, then a closed connection, every time. The
    re-decoded half is not progress, so the attempts in a row run out: no endless loop."""
    script = _TimedScript([(list(range(50)), _reset())] * 10)
    log = []
    source = UrlSource("http://host/half.ts", opener=script, max_attempts=3, backoff_s=0.1, log=log.append)
    frames = list(source.frames(_RecordingStop()))
    assert [f.index for f in frames] == list(range(50)) and len(script.calls) == 4
    assert ["attempt 1 of 3", "attempt 2 of 3", "attempt 3 of 3"] == [m.split("(")[2].split(" in")[0] for m in log]
    assert len(source.problems) == 1 and "50 frames delivered once each (150 decoded again were skipped)" in \
        source.problems[0]


def test_reconnects_in_all_are_bounded():
    """A live stream that brings one new frame per connection resets the attempts in a row each
    time; max_reconnects still ends it."""
    script = _Script([([i], _reset()) for i in range(100)])
    source = UrlSource("rtsp://cam/flaky", opener=script, max_reconnects=7, backoff_s=0.1, log=lambda m: None)
    frames = list(source.frames(_RecordingStop()))
    assert len(frames) == 8 and source.reconnects == 7
    assert "giving up after 7 reconnects in all" in source.problems[0]


def _mpegts(tmp_path, frames: int = 30) -> bytes:
    clip = generate_video(tmp_path / "c.mp4", num_frames=frames, fps=10, size=SIZE, seed=4)
    ts = tmp_path / "c.ts"
    with av.open(str(clip)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return ts.read_bytes()


def _serve_half(data: bytes, ranges: bool):
    """A local HTTP server whose reply to a request from byte 0 stops half-way (connection
    closed); with `ranges`, a Range request gets the rest."""
    import http.server
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            rng = self.headers.get("Range") if ranges else None
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            if ranges:
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            end = len(data) // 2 if start == 0 else len(data)
            try:
                self.wfile.write(data[start:end])
            except OSError:
                pass
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/c.ts"


@pytest.mark.parametrize("ranges", [True, False])
def test_real_http_drop_mid_file(tmp_path, ranges):
    """PyAV over a real socket. With Range support FFmpeg resumes and every frame comes once;
    without, the file is reopened, the first half skipped, and the source gives up after the
    attempts in a row: each frame still at most once, indices in order."""
    server, url = _serve_half(_mpegts(tmp_path), ranges)
    try:
        source = UrlSource(url, max_attempts=2, backoff_s=0.05, timeout_s=5, log=lambda m: None)
        frames = list(source.frames(threading.Event()))
    finally:
        server.shutdown()
    indices = [f.index for f in frames]
    assert indices == list(range(len(indices)))
    if ranges:
        assert len(frames) == 30 and source.problems == []
    else:
        assert 0 < len(frames) < 30 and source.reconnects == 2 and "giving up" in source.problems[0]
