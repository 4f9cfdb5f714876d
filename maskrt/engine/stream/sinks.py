"""Where processed frames go: annotated H.264 MP4, JSON lines, COCO results JSON, PNG folder.

Every sink receives `work` objects (see pipeline.Work: index, time, image, name, dets, record,
rendered) in frame order from one thread. prepare(source) claims the output before the first
frame (maskrt.safeio: checked, locked against another process, refused if it is one of the
source's inputs); the pipeline calls it before starting, `maskrt run` before loading the model.
File sinks write under a unique temporary name in the target's folder
(`.NAME.<host>-<pid>.<random>.partial`), and close(keep) renames it onto NAME when keep is true
(a run that finished, or was interrupted: the file then covers the frames done) or removes it
(a run that failed). A run that writes no frame leaves no file.
"""

from __future__ import annotations

import functools

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ...errors import OutputError
from ...safeio import Output, OutputFolder, refuse_overwriting


class Sink:
    """needs_record: wants work.record (the JSON-lines object of `maskrt run --json`, masks as RLE);
    needs_render: wants work.rendered (the annotated frame, uint8 [H, W, 3])."""

    needs_record = False
    needs_render = False

    def __init__(self):
        self.written = 0

    def prepare(self, source=None) -> None:
        """Claim the output before any frame (idempotent); OutputError when it cannot be written."""

    def planned_paths(self) -> list[Path]:
        """The files this sink will write, where known in advance (after prepare)."""
        return []

    def open(self, fps: float | None) -> None:
        """Called once before the first frame with the source's frame rate (None if unknown)."""

    def write(self, work) -> None:
        raise NotImplementedError

    def close(self, keep: bool) -> None:
        """Finish (keep=True: move into place) or discard (keep=False)."""


def _inputs(source) -> list[Path]:
    return list(source.input_paths()) if source is not None and hasattr(source, "input_paths") else []


class _FileSink(Sink):
    """One output file, claimed by prepare() (an Output)."""

    what = "output"
    seekable = False

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self._out: Output | None = None

    def prepare(self, source=None) -> None:
        if self._out is None:
            refuse_overwriting([self.path], _inputs(source), self.what)
            self._out = Output(self.path, self.what, seekable=self.seekable)

    def planned_paths(self) -> list[Path]:
        return [self._out.path] if self._out is not None else []

    @property
    def tmp(self) -> Path | None:
        """The temporary file being written (None before the first frame and after close)."""
        return self._out.tmp if self._out is not None else None

    def _fail(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write {self.path}: {exc.strerror or exc}")


class _TextFile(_FileSink):
    """A text file written under a temporary name, flushed after every frame, renamed on close."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._file = None

    def _ensure_open(self):
        if self._file is None:
            self.prepare()
            self._file = self._out.open("w")
            self._begin()
        return self._file

    def _begin(self) -> None:
        pass

    def _end(self) -> None:
        pass

    def _put(self, text: str, flush: bool = True) -> None:
        try:
            f = self._ensure_open()
            f.write(text)
            if flush:
                f.flush()
        except OSError as exc:
            raise self._fail(exc) from None

    def close(self, keep: bool) -> None:
        out, self._out = self._out, None
        if out is None:
            return
        try:
            if keep and self._file is not None:
                self._end()
        except OSError as exc:
            out.close(keep=False)
            raise self._fail(exc) from None
        self._file = None
        out.close(keep=keep)


class JsonLinesSink(_TextFile):
    """One JSON object per frame: {"frame", "time", "instances": [{"bbox": [x, y, w, h], "score",
    "category_id", "segmentation": {"size": [H, W], "counts"}}]} (+ "file" for still images)."""

    needs_record = True
    what = "--json"

    def write(self, work) -> None:
        self._put(json.dumps(work.record, separators=(",", ":")) + "\n")
        self.written += 1


class RecordsSink(Sink):
    """Keeps every frame's record (the JSON-lines object) in memory, in `records`: for evaluating
    a run in the same process (maskrt eval --video, benchmarks). Memory grows with the video."""

    needs_record = True

    def __init__(self):
        super().__init__()
        self.records: list[dict] = []

    def write(self, work) -> None:
        self.records.append(work.record)
        self.written += 1


class CocoResultsSink(_TextFile):
    """A COCO results JSON array, streamed: one {"image_id": frame index, "category_id", "bbox",
    "score", "segmentation"} per instance, so memory does not grow with the video."""

    needs_record = True
    what = "--coco"

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._first = True

    def _begin(self) -> None:
        self._file.write("[")

    def _end(self) -> None:
        self._file.write("\n]\n")

    def write(self, work) -> None:
        parts = []
        for inst in work.record["instances"]:
            parts.append(("\n" if self._first else ",\n") + json.dumps({"image_id": work.index, **inst},
                                                                        separators=(",", ":")))
            self._first = False
        self._put("".join(parts), flush=False)
        self.written += 1


class PngFolderSink(Sink):
    """Annotated still images: FOLDER/<input file name>.png, keeping the input's extension so
    that inputs differing only in it do not collide (pic.jpg -> pic.jpg.png, pic.png ->
    pic.png.png); with a glob, the path below the glob's fixed folder ('d/**/*.jpg':
    d/a/x.jpg -> FOLDER/a/x.jpg.png); frame_<index>.png for unnamed frames. Each image is
    staged under a temporary name and all are renamed into place on close(keep=True), removed on
    close(keep=False). A folder holding input images is refused (outputs would become inputs)."""

    needs_render = True
    what = "--out"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = Path(folder)
        self._out: OutputFolder | None = None
        self._names: dict[str, str] = {}
        self._planned: list[Path] = []

    def prepare(self, source=None) -> None:
        if self._out is not None:
            return
        inputs = _inputs(source)
        folder = os.path.realpath(self.folder)
        for path in inputs:
            if os.path.realpath(path.parent) == folder:
                raise OutputError(f"--out {self.folder} holds the input {path.name}; choose another folder "
                                  "(outputs there would be read as inputs next time)")
        self._names = dict(source.output_names()) if hasattr(source, "output_names") else {}
        self._out = OutputFolder(self.folder, self.what)
        try:
            self._planned = [self._out.check_member(rel + ".png") for rel in self._names.values()]
            refuse_overwriting(self._planned, inputs, self.what)
        except BaseException:
            self._out.close(keep=False)
            self._out = None
            raise

    def planned_paths(self) -> list[Path]:
        return list(self._planned)

    def write(self, work) -> None:
        from PIL import Image

        self.prepare()
        rel = self._names.get(work.name) if work.name else None
        name = f"{rel}.png" if rel else f"frame_{work.index:06d}.png"
        self._out.stage_member(name, lambda f: Image.fromarray(work.rendered).save(f, format="PNG"))
        self.written += 1

    def close(self, keep: bool) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.close(keep)


def pad_to_even(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> [H + H % 2, W + W % 2, 3]: one black row/column added at the bottom/right
    when a side is odd (H.264 yuv420p needs even sizes; JSON masks keep the original size)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))


# What makes an MP4 a function of its frames (and x264's version) alone, so that `maskrt run`,
# `maskrt batch` (any worker, any machine) and a rerun write the same bytes (issue 22):
# - a fixed thread count: x264's output depends on it, and its default ("auto", 1.5 x the CPUs
#   the process may use) differs between machines, Ray workers and run. Encoding runs beside
#   inference, which is far slower, so 4 threads keep up on any machine;
# - on CPUs with AVX-512, x264's SIMD up to AVX2 only: its AVX-512 code for macroblock-tree rate
#   control gives different bytes for the same frames from one encoder to the next in a process
#   (measured with PyAV 18's x264; with asm=0, up to AVX2, or without mbtree the bytes are stable,
#   and the same for every SIMD level: x264's kernels are bit-exact). Every AVX-512 CPU has the
#   AVX2-level set named here, so x264 is never told of an instruction the CPU lacks.
ENCODER_THREADS = 4
X264_UP_TO_AVX2 = "MMX2,SSE,SSE2,SSE3,SSSE3,SSE4.1,SSE4.2,AVX,FMA3,BMI1,BMI2,AVX2,LZCNT"


@functools.cache
def encoder_options() -> dict[str, str]:
    """libx264 options besides crf and preset (see above)."""
    from ...machine import describe

    options = {"threads": str(ENCODER_THREADS)}
    if "avx512f" in describe(with_openvino=False).flags:
        options["x264-params"] = f"asm={X264_UP_TO_AVX2}"
    return options


class VideoSink(_FileSink):
    """Annotated frames as H.264 (libx264, yuv420p) in MP4 with the index at the front (faststart),
    which browsers play. Frame rate: the source's (default_fps when unknown). Timestamps follow the
    frames' times, so frames dropped in real-time mode show as the previous frame held; frames
    without a time are spaced 1/fps apart. Odd sizes are padded to even (see pad_to_even). The
    target must be a regular file (faststart rewrites the file; a pipe or device is refused)."""

    needs_render = True
    what = "--out"
    seekable = True

    def __init__(self, path: str | Path, *, crf: int = 23, preset: str = "veryfast", default_fps: float = 30.0):
        super().__init__(path)
        self.crf, self.preset, self.default_fps = crf, preset, default_fps
        self.rate = Fraction(default_fps).limit_denominator(1001)
        self._container = None
        self._stream = None
        self._last_pts = -1

    def open(self, fps: float | None) -> None:
        self.rate = Fraction(fps or self.default_fps).limit_denominator(1001)

    def _start(self, height: int, width: int) -> None:
        self.prepare()
        tmp = self._out.temp_path()
        self._container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset, **encoder_options()}
        self._stream = stream

    def write(self, work) -> None:
        image = pad_to_even(work.rendered)
        try:
            if self._container is None:
                self._start(image.shape[0], image.shape[1])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            pts = self._last_pts + 1 if work.time is None else round(work.time * self.rate)
            frame.pts = self._last_pts = max(pts, self._last_pts + 1)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as exc:
            raise self._fail(exc) from None
        self.written += 1

    def close(self, keep: bool) -> None:
        out, self._out = self._out, None
        container, self._container = self._container, None
        if out is None:
            return
        try:
            if container is not None:
                try:
                    if keep:
                        for packet in self._stream.encode(None):
                            container.mux(packet)
                finally:
                    container.close()
        except OSError as exc:
            out.close(keep=False)
            raise self._fail(exc) from None
        except BaseException:
            out.close(keep=False)
            raise
        out.close(keep=keep and container is not None)
