"""Where processed frames go: annotated H.264 MP4, JSON lines, COCO results JSON, PNG folder.

Every sink receives `work` objects (see pipeline.Work: index, time, image, name, dets, record,
rendered) in frame order from one thread. File sinks create their file on the first frame, under
a temporary name (`NAME.partial`), and close(keep) renames it to NAME when keep is true (a run
that finished, or was interrupted: the file then covers the frames done) or deletes it (a run
that failed). A run that writes no frame leaves no file.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..outputs import AtomicFile


class Sink:
    """needs_record: wants work.record (the DESIGN.md JSON-lines object, masks as RLE);
    needs_render: wants work.rendered (the annotated frame, uint8 [H, W, 3])."""

    needs_record = False
    needs_render = False

    def __init__(self):
        self.written = 0

    def open(self, fps: float | None) -> None:
        """Called once before the first frame with the source's frame rate (None if unknown)."""

    def write(self, work) -> None:
        raise NotImplementedError

    def close(self, keep: bool) -> None:
        """Finish (keep=True: move into place) or discard (keep=False)."""


class _PartialFile(Sink):
    """A text file written under NAME.partial, flushed after every frame, renamed on close."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self._file = None

    def _ensure_open(self):
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.tmp, "w", encoding="utf-8")
            self._begin()
        return self._file

    def _begin(self) -> None:
        pass

    def _end(self) -> None:
        pass

    def close(self, keep: bool) -> None:
        if self._file is None:
            return
        if keep:
            self._end()
        self._file.close()
        self._file = None
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class JsonLinesSink(_PartialFile):
    """One JSON object per frame: {"frame", "time", "instances": [{"bbox": [x, y, w, h], "score",
    "category_id", "segmentation": {"size": [H, W], "counts"}}]} (+ "file" for still images)."""

    needs_record = True

    def write(self, work) -> None:
        f = self._ensure_open()
        f.write(json.dumps(work.record, separators=(",", ":")) + "\n")
        f.flush()
        self.written += 1


class CocoResultsSink(_PartialFile):
    """A COCO results JSON array, streamed: one {"image_id": frame index, "category_id", "bbox",
    "score", "segmentation"} per instance, so memory does not grow with the video."""

    needs_record = True

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._first = True

    def _begin(self) -> None:
        self._file.write("[")

    def _end(self) -> None:
        self._file.write("\n]\n")

    def write(self, work) -> None:
        f = self._ensure_open()
        for inst in work.record["instances"]:
            f.write(("\n" if self._first else ",\n") + json.dumps({"image_id": work.index, **inst},
                                                                  separators=(",", ":")))
            self._first = False
        self.written += 1


class PngFolderSink(Sink):
    """Annotated still images: FOLDER/<image stem>.png (frame_<index>.png for unnamed frames),
    each written atomically."""

    needs_render = True

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder)

    def write(self, work) -> None:
        from PIL import Image

        stem = Path(work.name).stem if work.name else f"frame_{work.index:06d}"
        with AtomicFile(self.folder / f"{stem}.png", "wb") as f:
            Image.fromarray(work.rendered).save(f, format="PNG")
        self.written += 1


def pad_to_even(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> [H + H % 2, W + W % 2, 3]: one black row/column added at the bottom/right
    when a side is odd (H.264 yuv420p needs even sizes; JSON masks keep the original size)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))


class VideoSink(Sink):
    """Annotated frames as H.264 (libx264, yuv420p) in MP4 with the index at the front (faststart),
    which browsers play. Frame rate: the source's (default_fps when unknown). Timestamps follow the
    frames' times, so frames dropped in real-time mode show as the previous frame held; frames
    without a time are spaced 1/fps apart. Odd sizes are padded to even (see pad_to_even)."""

    needs_render = True

    def __init__(self, path: str | Path, *, crf: int = 23, preset: str = "veryfast", default_fps: float = 30.0):
        super().__init__()
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self.crf, self.preset, self.default_fps = crf, preset, default_fps
        self.rate = Fraction(default_fps).limit_denominator(1001)
        self._container = None
        self._stream = None
        self._last_pts = -1

    def open(self, fps: float | None) -> None:
        self.rate = Fraction(fps or self.default_fps).limit_denominator(1001)

    def _start(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._stream = stream

    def write(self, work) -> None:
        image = pad_to_even(work.rendered)
        if self._container is None:
            self._start(image.shape[0], image.shape[1])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        pts = self._last_pts + 1 if work.time is None else round(work.time * self.rate)
        frame.pts = self._last_pts = max(pts, self._last_pts + 1)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.written += 1

    def close(self, keep: bool) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if keep:
                for packet in self._stream.encode(None):
                    container.mux(packet)
            container.close()
        except BaseException:
            container.close()
            self.tmp.unlink(missing_ok=True)
            raise
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
