"""The frame and the source interface every source implements."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
