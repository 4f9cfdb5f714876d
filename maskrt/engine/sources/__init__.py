"""Frame sources: what the pipeline reads. `open_source(spec)` picks one from a user's SOURCE.

base.py: Frame, FrameSource, ArraySource; images.py: still images (files, folders, globs);
video.py: videos, cameras and URLs through PyAV (imported when such a source is opened).

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
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..images import IMAGE_SUFFIXES
from .base import ArraySource, Frame, FrameSource
from .images import ImageSource, has_glob, image_paths, relative_names

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")


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
        if path.is_dir() or (has_glob(text) and not path.exists()):
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
    from .video import CameraSource, UrlSource, VideoFileSource

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


__all__ = ["URL_SCHEMES", "ArraySource", "Frame", "FrameSource", "ImageSource", "describe_kind", "has_glob",
           "image_paths", "open_source", "relative_names"]
