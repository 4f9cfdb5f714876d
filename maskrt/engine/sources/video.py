"""Sources decoded with PyAV: video files, webcams and network streams (rtsp, rtmp, http, ...).

Decoding uses FFmpeg's own threads (thread_type "AUTO") and runs on the pipeline's decode thread.
Frames are converted to [H, W, 3] uint8 RGB whatever the pixel format (yuv, gray, rgba, ...).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av

from ...errors import InputError
from .base import Frame, FrameSource

_DECODE_ERRORS = (av.FFmpegError, OSError)


def _reason(exc: BaseException) -> str:
    """One line from a PyAV or OS error (its strerror, without errno and file name)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0]


def _video_stream(container, what: str):
    if not container.streams.video:
        raise InputError(f"{what} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _rate(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def _log_stderr(message: str) -> None:
    print(f"maskrt: {message}", file=sys.stderr, flush=True)


class VideoFileSource(FrameSource):
    """A video file, every frame in order; time = the frame's timestamp minus the first one's.

    A packet that fails to decode is skipped and counted; if the file holds fewer frames than
    its header states (truncated), that goes to `problems`. No decodable frame -> InputError.
    """

    kind = "video"

    def __init__(self, path: str | Path):
        super().__init__(str(path))
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
        except _DECODE_ERRORS as exc:
            raise InputError(f"cannot read {self.path}: not a video or image file, or a damaged one "
                             f"({_reason(exc)})") from None
        try:
            stream = _video_stream(self._container, str(self.path))
        except InputError:
            self._container.close()
            raise
        self.fps = _rate(stream)
        self.expected_frames = int(stream.frames) or None
        self.size = (int(stream.height), int(stream.width))
        self.bad_packets = 0

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        count, first, error = 0, None, None
        packets = self._container.demux(stream)
        while not stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            except _DECODE_ERRORS as exc:  # unreadable container data: the rest is lost
                error = _reason(exc)
                break
            try:
                decoded = packet.decode()
            except _DECODE_ERRORS:
                self.bad_packets += 1
                continue
            for frame in decoded:
                t = frame.time if frame.time is not None else count / (self.fps or 1.0)
                first = t if first is None else first
                yield Frame(count, t - first, frame.to_ndarray(format="rgb24"))
                count += 1
        if not stop.is_set():
            self._report(count, error)

    def _report(self, count: int, error: str | None) -> None:
        if count == 0:
            why = error or ("damaged data" if self.bad_packets else "the video has no frames")
            raise InputError(f"no frame could be decoded from {self.path} ({why})")
        if error:
            self.problems.append(f"{self.path}: reading stopped after {count} frames ({error})")
        elif self.expected_frames and count < self.expected_frames:
            self.problems.append(f"{self.path}: only {count} of {self.expected_frames} frames could be "
                                 "decoded (the file is truncated or damaged)")
        if self.bad_packets:
            self.problems.append(f"{self.path}: {self.bad_packets} damaged packet(s) skipped")

    def close(self) -> None:
        self._container.close()

    def input_paths(self) -> list[Path]:
        return [self.path]


def camera_input(index: int) -> tuple[str, str]:
    """(device, FFmpeg input format) of webcam `index`: /dev/videoN with v4l2 on Linux, the
    avfoundation index on macOS. Other systems: InputError."""
    if sys.platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if sys.platform == "darwin":
        return str(index), "avfoundation"
    raise InputError(f"webcam {index}: cameras are supported on Linux (v4l2) and macOS (avfoundation) only")


class CameraSource(FrameSource):
    """A webcam by index; time is wall-clock seconds since the first frame.

    Unverified here (no camera on the development machines): kept to opening the device with
    PyAV and decoding; the pipeline treats it as live (real time by default).
    """

    kind = "camera"
    live = True

    def __init__(self, index: int, opener: Callable = av.open):
        device, fmt = camera_input(index)
        super().__init__(f"camera {index} ({device})")
        try:
            self._container = opener(device, format=fmt)
        except _DECODE_ERRORS as exc:
            raise InputError(f"cannot open {self.description}: {_reason(exc)}") from None
        self.fps = _rate(_video_stream(self._container, self.description))

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        start, count = None, 0
        try:
            for frame in self._container.decode(stream):
                if stop.is_set():
                    return
                start = time.monotonic() if start is None else start
                yield Frame(count, time.monotonic() - start, frame.to_ndarray(format="rgb24"))
                count += 1
        except _DECODE_ERRORS as exc:
            if count == 0:
                raise InputError(f"{self.description}: {_reason(exc)}") from None
            self.problems.append(f"{self.description} stopped after {count} frames ({_reason(exc)})")

    def close(self) -> None:
        self._container.close()


# FFmpeg's own http reconnect: a connection that drops mid-file is resumed at the byte where it
# stopped (a Range request) when the server allows it, within the same session.
HTTP_RESUME_OPTIONS = {"reconnect": "1", "reconnect_on_network_error": "1", "reconnect_delay_max": "2"}


class UrlSource(FrameSource):
    """A network stream, reconnected with exponential backoff when it fails.

    opener(url, options=dict, timeout=seconds) -> PyAV input container (av.open; injectable for
    tests). After a failure or (for live protocols) the end of the stream, it waits
    backoff_s * 2**k seconds (k = 0, 1, ..., capped at max_backoff_s) and reopens, reporting each
    attempt through `log`. It gives up when `max_attempts` reconnects in a row bring no new
    frame, or after `max_reconnects` reconnects in all: InputError if no frame ever came, else a
    line in `problems`. http(s) resources are files: they end normally at their end
    (reconnect_on_eof=False); a drop mid-file is first resumed by FFmpeg at the byte reached
    (HTTP_RESUME_OPTIONS, when the server takes Range requests), else the file is reopened and
    the frames already delivered are skipped (by timestamp, or by count when frames have none),
    so no frame is emitted twice. Live protocols reconnect at the end too and never skip.
    Frame indices keep counting across reconnects; time is wall-clock seconds since the first frame.
    """

    kind = "url"
    live = True

    def __init__(self, url: str, *, opener: Callable = av.open, max_attempts: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, timeout_s: float = 10.0, reconnect_on_eof: bool | None = None,
                 max_reconnects: int = 50, log: Callable[[str], None] = _log_stderr):
        super().__init__(url)
        self.url = url
        self._opener, self._log = opener, log
        self.max_attempts, self.backoff_s, self.max_backoff_s = max_attempts, backoff_s, max_backoff_s
        self.max_reconnects, self.timeout_s = max_reconnects, timeout_s
        scheme = url.split("://", 1)[0].lower()
        self.reconnect_on_eof = scheme not in ("http", "https") if reconnect_on_eof is None else reconnect_on_eof
        self.options = {"rtsp_transport": "tcp"} if scheme.startswith("rtsp") else {}
        if scheme in ("http", "https"):
            self.options.update(HTTP_RESUME_OPTIONS)
        self.reconnects = 0
        self.skipped = 0  # frames decoded again after a reopen and not re-emitted
        self._count = 0
        self._start: float | None = None
        self._last_time: float | None = None  # stream timestamp of the last frame emitted

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        failures = 0
        while not stop.is_set():
            before = self._count
            reason = yield from self._session(stop)
            if stop.is_set() or reason is None:
                return
            failures = 1 if self._count > before else failures + 1
            if failures > self.max_attempts:
                self._give_up(f"giving up after {self.max_attempts} failed reconnects ({reason})")
                return
            if self.reconnects >= self.max_reconnects:
                self._give_up(f"giving up after {self.reconnects} reconnects in all ({reason})")
                return
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1))
            self.reconnects += 1
            self._log(f"{self.url}: {reason}; reconnecting in {delay:.1f} s (attempt {failures} of "
                      f"{self.max_attempts} in a row, reconnect {self.reconnects} of {self.max_reconnects})")
            stop.wait(delay)

    def _session(self, stop: threading.Event):
        """Open once and yield the new frames; returns why it ended (None: ended normally, stop here)."""
        try:
            container = self._opener(self.url, options=dict(self.options), timeout=self.timeout_s)
        except _DECODE_ERRORS as exc:
            return f"cannot connect ({_reason(exc)})"
        resume = not self.reconnect_on_eof and self._count > 0  # a file reopened: skip what was sent
        decoded = 0
        try:
            stream = _video_stream(container, self.url)
            self.fps = self.fps or _rate(stream)
            for frame in container.decode(stream):
                if stop.is_set():
                    return None
                decoded += 1
                t = getattr(frame, "time", None)
                if resume and (t <= self._last_time + 1e-6 if t is not None and self._last_time is not None
                               else decoded <= self._count):
                    self.skipped += 1
                    continue
                self._last_time = t
                self._start = time.monotonic() if self._start is None else self._start
                yield Frame(self._count, time.monotonic() - self._start, frame.to_ndarray(format="rgb24"))
                self._count += 1
        except _DECODE_ERRORS as exc:
            return f"stream lost ({_reason(exc)})"
        except InputError as exc:
            return str(exc)
        finally:
            container.close()
        return "stream ended" if self.reconnect_on_eof else None

    def _give_up(self, why: str) -> None:
        message = f"{self.url}: {why}"
        if self._count == 0:
            raise InputError(message)
        if self.skipped:
            message += f"; {self._count} frames delivered once each ({self.skipped} decoded again were skipped)"
        self.problems.append(message)
