"""Still images as a source: a file, a folder of images, or a glob pattern."""

from __future__ import annotations

import glob
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..images import IMAGE_SUFFIXES, read_image
from .base import Frame, FrameSource


def has_glob(text: str) -> bool:
    """True when `text` holds a glob wildcard (*, ? or [)."""
    return any(ch in text for ch in "*?[")


def image_paths(source: str | Path) -> list[Path]:
    """Expand an image file, a folder (its images, sorted) or a glob into image paths."""
    text = str(source)
    if has_glob(text) and not Path(text).exists():
        paths = sorted(Path(p) for p in glob.glob(text, recursive=True))
        paths = [p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not paths:
            raise InputError(f"no images match {text}")
        return paths
    path = Path(text)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"no images in folder {path}")
        return paths
    if not path.exists():
        raise InputError(f"input not found: {path}")
    return [path]


def glob_base(pattern: str) -> Path:
    """The fixed folder a glob starts from: its leading components without wildcards
    ('d/*.png' -> d, 'd/**/x*.jpg' -> d, '*.png' -> .)."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if has_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def relative_names(paths: list[Path], source: str | Path) -> list[str]:
    """Each image's path relative to the source: its name for a file or a folder, its path below
    glob_base for a glob (distinct inputs get distinct names)."""
    text = str(source)
    if has_glob(text) and not Path(text).exists():
        base = glob_base(text)
        names = []
        for p in paths:
            try:
                names.append(p.relative_to(base).as_posix())
            except ValueError:
                names.append(p.name)
        return names
    return [p.name for p in paths]


def iter_images(source: str | Path) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield (path, RGB uint8 [H, W, 3]) for each image of the source, in order."""
    for path in image_paths(source):
        yield path, read_image(path)


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
        """Frame.name -> the image's name relative to the source (see relative_names)."""
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
