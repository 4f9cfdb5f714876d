"""Where frames come from. Still images here: a file, a folder of images, or a glob pattern."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from .images import IMAGE_SUFFIXES, read_image


def _has_glob(text: str) -> bool:
    """True when `text` holds a glob wildcard (*, ? or [)."""
    return any(ch in text for ch in "*?[")


def image_paths(source: str | Path) -> list[Path]:
    """Expand an image file, a folder (its images, sorted) or a glob into image paths."""
    text = str(source)
    if _has_glob(text) and not Path(text).exists():
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
        if _has_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def relative_names(paths: list[Path], source: str | Path) -> list[str]:
    """Each image's path relative to the source: its name for a file or a folder, its path below
    glob_base for a glob (distinct inputs get distinct names)."""
    text = str(source)
    if _has_glob(text) and not Path(text).exists():
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
