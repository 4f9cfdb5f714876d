"""Frame sources: what the pipeline reads. `open_source(spec)` picks one from a user's SOURCE.

A source yields `Frame(index, time, image, name)`: index counts from 0 in source order (frames a
real-time run drops still use up their index); time is seconds from the source's first frame
(video timestamps for files, wall clock for cameras and URLs, None for still images); image is
np.ndarray [H, W, 3] uint8 RGB as decoded (the pipeline converts grayscale/RGBA arrays given
directly). Problems that do not stop a run (a truncated file, a skipped image, a reconnect that
failed for good after frames came through) are appended to `source.problems`; problems before
any frame raise InputError.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..images import IMAGE_SUFFIXES, read_image
from ..sources import _has_glob, image_paths, relative_names

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")


@dataclass
class Frame:
    """index: position in the source; time: seconds or None; image: [H, W, 3] uint8 RGB;
    name: the file it came from (still images) or None."""

    index: int
    time: float | None
    image: np.ndarray
    name: str | None = None


class FrameSource:
    """Base class. Subclasses set the attributes and implement frames().

    kind: "video", "images", "camera", "url" or "arrays"; live: True when frames arrive in real
    time (cameras, URLs), which makes real-time mode the default; fps: frames per second if
    known; expected_frames: frame count if the container states it; description: for messages.
    """

    kind = "frames"
    live = False

    def __init__(self, description: str = ""):
        self.description = description
        self.fps: float | None = None
        self.expected_frames: int | None = None
        self.problems: list[str] = []

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames until the source ends or `stop` is set."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files and connections (idempotent)."""

    def input_paths(self) -> list[Path]:
        """The files read (outputs must not overwrite them); [] for cameras, URLs, arrays."""
        return []


class ArraySource(FrameSource):
    """Frames given as arrays: an iterable of images, or one [N, H, W, C] array; time = index / fps
    when fps is given, else None."""

    kind = "arrays"

    def __init__(self, frames: Iterable, fps: float | None = None):
        super().__init__("frames")
        self._frames = frames
        self.fps = fps
        if hasattr(frames, "__len__"):
            self.expected_frames = len(frames)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for index, image in enumerate(self._frames):
            if stop.is_set():
                return
            yield Frame(index, index / self.fps if self.fps else None, image)


class ImageSource(FrameSource):
    """Still images: a file, a folder (its images, sorted by name) or a glob. Unreadable images
    are skipped and listed in `problems`; their index is still used up."""

    kind = "images"

    def __init__(self, spec: str | Path):
        super().__init__(str(spec))
        self.paths = image_paths(spec)
        self.names = relative_names(self.paths, spec)
        self.expected_frames = len(self.paths)

    def input_paths(self) -> list[Path]:
        return list(self.paths)

    def output_names(self) -> dict[str, str]:
        """Frame.name -> the image's name relative to the source (see engine.sources.relative_names)."""
        return {str(p): n for p, n in zip(self.paths, self.names)}

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            if stop.is_set():
                return
            try:
                image = read_image(path)
            except InputError as exc:
                self.problems.append(f"skipped: {exc}")
                continue
            yield Frame(index, None, image, str(path))


def _is_url(text: str) -> bool:
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    return bool(match) and match.group(1).lower() in URL_SCHEMES


def describe_kind(spec) -> str:
    """What open_source would make of `spec`, without opening it: "camera", "url", "images",
    "video", "arrays" or "source"."""
    if isinstance(spec, FrameSource):
        return spec.kind
    if isinstance(spec, bool):
        return "arrays"
    if isinstance(spec, int):
        return "camera"
    if isinstance(spec, (str, Path)):
        text = str(spec)
        path = Path(text)
        if text.isdigit() and not path.exists():
            return "camera"
        if _is_url(text):
            return "url"
        if path.is_dir() or (_has_glob(text) and not path.exists()):
            return "images"
        return "images" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
    return "arrays"


def open_source(spec, **options) -> FrameSource:
    """A FrameSource for `spec`.

    spec: a FrameSource (returned as is); an int or a digit string (webcam index); an
    rtsp/rtmp/http(s)/udp/srt URL; an image file, a folder or a glob of images; a video file
    (anything else that exists); one image array [H, W(, C)], an array [N, H, W, C] or an
    iterable of image arrays. `options` go to the URL source (see UrlSource). Files are opened
    here, so a missing or unreadable input raises InputError before any output is made.
    """
    from .av_sources import CameraSource, UrlSource, VideoFileSource

    kind = describe_kind(spec)
    if isinstance(spec, FrameSource):
        return spec
    if kind == "camera":
        return CameraSource(int(spec))
    if kind == "url":
        return UrlSource(str(spec), **options)
    if kind == "images":
        return ImageSource(spec)
    if kind == "video":
        if not Path(spec).exists():
            raise InputError(f"input not found: {spec}")
        return VideoFileSource(spec)
    if isinstance(spec, np.ndarray):
        return ArraySource([spec] if spec.ndim in (2, 3) else spec)
    if isinstance(spec, Iterable) and not isinstance(spec, (str, bytes)):
        return ArraySource(spec)
    raise InputError(f"cannot read frames from a {type(spec).__name__}: give a path, URL, camera index or arrays")
