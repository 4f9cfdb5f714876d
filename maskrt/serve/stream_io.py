"""What a served stream reads and writes, built on the streaming pipeline's sources and sinks.

- LoopingVideoSource: a video file played again and again (a stand-in camera for tests and
  demos); indices and times keep growing across loops; not live, so real-time mode paces it at
  the file's frame rate.
- AppendJsonLinesSink: NAME.jsonl that survives restarts. Each record is one write of one line
  ending in a newline, flushed; a process killed mid-write can leave only a partial last line,
  which the next start cuts off before appending. `frame` is the source's frame number, continued
  from the last line after a restart (frames dropped in real time leave gaps, as in `maskrt run
  --realtime --json`), `session` counts the starts of the pipeline and `wall_time` is Unix time.
  So every line of the file parses, and frame numbers only increase.
- LatestFrameSink: the newest annotated frame as JPEG bytes, for the page and the MJPEG feed.
- SegmentedVideoSink: annotated H.264 MP4 in segments of `seconds` (NAME/segment_00001.mp4, ...),
  each complete and playable once closed; the segment being written when a process dies is a
  `.partial` file, removed at the next start (at most `seconds` of video are lost).
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..engine.sources import Frame, FrameSource
from ..engine.sources.video import VideoFileSource
from ..engine.stream.sinks import Sink, VideoSink
from ..safeio import AppendLog
from ..safeio.durable import last_complete_line


class LoopingVideoSource(FrameSource):
    """A video file replayed from the start whenever it ends (until stopped)."""

    kind = "video"
    live = False

    def __init__(self, path: str | Path):
        super().__init__(f"{path} (looped)")
        self.path = Path(path)
        probe = VideoFileSource(self.path)  # InputError now for a missing or unreadable file
        self.fps = probe.fps
        probe.close()
        self.loops = 0

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        index, offset = 0, 0.0
        step = 1.0 / (self.fps or 30.0)
        while not stop.is_set():
            source = VideoFileSource(self.path)
            last = None
            try:
                for frame in source.frames(stop):
                    if stop.is_set():
                        return
                    last = frame.time
                    yield Frame(index, offset + (frame.time or 0.0), frame.image)
                    index += 1
            finally:
                source.close()
            if last is None:
                return
            offset += last + step
            self.loops += 1


class AppendJsonLinesSink(Sink):
    """Appends the pipeline's records to `path` (see the module docstring for the guarantees)."""

    needs_record = True

    def __init__(self, path: str | Path, stream: str):
        super().__init__()
        self.path, self.stream = Path(path), stream
        self._log = AppendLog(self.path)
        last, _ = last_complete_line(self.path)
        self.next_frame = 0 if last is None else int(last["frame"]) + 1  # frames in the file so far
        self.session = 0
        self._base = self.next_frame

    def open(self, fps: float | None) -> None:
        """Start a session (one sink may serve several, one after the other)."""
        last = self._log.open()  # a partial last line from a killed process is cut off
        if last is not None:
            self.next_frame, self.session = int(last["frame"]) + 1, int(last.get("session", 0)) + 1
        self._base = self.next_frame

    def write(self, work) -> None:
        record = {"frame": self._base + work.index, "session": self.session, "stream": self.stream,
                  "wall_time": round(time.time(), 3), **{k: v for k, v in work.record.items() if k != "frame"}}
        self._log.append(record)
        self.next_frame = record["frame"] + 1
        self.written += 1

    def close(self, keep: bool) -> None:
        self._log.close()


class LatestFrameSink(Sink):
    """Keeps the newest annotated frame as JPEG: latest(after) -> (seq, jpeg bytes) or None."""

    needs_render = True

    def __init__(self, quality: int = 80):
        super().__init__()
        self.quality = quality
        self._lock = threading.Lock()
        self._latest: tuple[int, bytes, float] | None = None
        self.size: tuple[int, int] | None = None

    def write(self, work) -> None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(work.rendered).save(buffer, format="JPEG", quality=self.quality)
        with self._lock:
            seq = 0 if self._latest is None else self._latest[0] + 1
            self._latest = (seq, buffer.getvalue(), time.time())
        self.size = work.rendered.shape[:2]
        self.written += 1

    def latest(self, after: int = -1) -> tuple[int, bytes] | None:
        with self._lock:
            if self._latest is None or self._latest[0] <= after:
                return None
            return self._latest[0], self._latest[1]

    def age(self) -> float | None:
        with self._lock:
            return None if self._latest is None else time.time() - self._latest[2]


class SegmentedVideoSink(Sink):
    """Annotated MP4 segments of `seconds` each in `folder`, numbered on from what is there."""

    needs_render = True
    PATTERN = re.compile(r"segment_(\d+)\.mp4$")

    def __init__(self, folder: str | Path, seconds: float):
        super().__init__()
        self.folder, self.seconds = Path(folder), float(seconds)
        self._video: VideoSink | None = None
        self._start: float | None = None
        self._fps: float | None = None

    def open(self, fps: float | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("segment_*.mp4.partial"):
            stale.unlink(missing_ok=True)
        self._fps = fps

    def _next_path(self) -> Path:
        numbers = [int(m.group(1)) for p in self.folder.iterdir() if (m := self.PATTERN.match(p.name))]
        return self.folder / f"segment_{max(numbers, default=0) + 1:05d}.mp4"

    def write(self, work) -> None:
        t = work.time or 0.0
        if self._video is not None and t - self._start >= self.seconds:
            self._video.close(keep=True)
            self._video = None
        if self._video is None:
            self._video = VideoSink(self._next_path())
            self._video.open(self._fps)
            self._start = t
        shifted = _Shifted(work, t - self._start)
        self._video.write(shifted)
        self.written += 1

    def close(self, keep: bool) -> None:
        if self._video is not None:
            self._video.close(keep)
            self._video = None


class _Shifted:
    """A work item whose time is relative to its segment's start (VideoSink timestamps from 0)."""

    def __init__(self, work, time_s: float):
        self.rendered, self.time, self.index = work.rendered, time_s, work.index
