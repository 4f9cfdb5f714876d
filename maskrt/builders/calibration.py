"""Calibration images for INT8 engines: which images, how many, and their hash.

`resolve_calibration(spec, weights, size)` turns `--calibration` / `--calibration-size` into a
`CalibrationSet`:
- no spec: allowed only for the bundled shapes model, whose default calibration set is its own
  synthetic scenes (maskrt.data); any other checkpoint gets a one-line error saying what to pass
  (a user's model is never calibrated on synthetic shapes unless asked);
- "synthetic": the same synthetic scenes, explicitly;
- a folder or a glob of images (maskrt.engine.sources.image_paths): `size` of them, evenly
  spaced over the sorted list (a folder of consecutive video frames is not calibrated on its
  first second only).

Synthetic scenes come from seed CALIBRATION_SEED, disjoint from the validation seed (424242),
from the training seeds (tools/train_shapes.py: 1000 + step, < 20,000) and from the test seeds,
at natural sizes of 240..320 x 240..320 pixels (the bundled model's 320x320 scenes and 240x320
videos), so the dense stage is calibrated on the dynamic shapes it runs on.

The hash (sha256) covers every image's shape and RGB bytes in order: two builds with the same
hash were calibrated on the same pixels, however the images were stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MaskrtError

SYNTHETIC = "synthetic"
CALIBRATION_SEED = 606_060
SYNTHETIC_SIZE = ((240, 320), (240, 320))  # inclusive (h, w) ranges, see maskrt.data.make_scene
DEFAULT_SIZE = 128
BUNDLED_NAME = "shapes_r18fpn64.safetensors"


@dataclass
class CalibrationSet:
    """`size` images, produced (again, identically) by each call of `images()`.

    source: "synthetic (seed S)" or the folder / glob given; images(): iterator of
    np.ndarray[H, W, 3] uint8 RGB at their natural sizes."""

    source: str
    size: int
    images: Callable[[], Iterator[np.ndarray]]

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for image in self.images():
            digest.update(repr(image.shape).encode())
            digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()


def bundled_checkpoint() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / BUNDLED_NAME


def is_bundled(weights: str | Path) -> bool:
    """True for the bundled shapes checkpoint (the file itself or a byte-identical copy)."""
    from ..hashing import sha256_file

    path, bundled = Path(str(weights)), bundled_checkpoint()
    if not path.is_file() or not bundled.is_file() or path.stat().st_size != bundled.stat().st_size:
        return False
    return path.resolve() == bundled or sha256_file(path) == sha256_file(bundled)


def resolve_calibration(spec: str | None, weights: str | Path, size: int | None = None) -> CalibrationSet:
    """The calibration set for an INT8 build of `weights` (see the module docstring)."""
    if size is not None and size < 1:
        raise MaskrtError(f"--calibration-size must be at least 1, got {size}")
    size = size or DEFAULT_SIZE
    if spec is None:
        if not is_bundled(weights):
            raise MaskrtError(f"--precision int8 needs calibration images for {weights}: pass --calibration "
                              f"DIR_OR_GLOB (a few hundred images like those it will see), or --calibration "
                              f"{SYNTHETIC} to calibrate on maskrt's synthetic shapes")
        spec = SYNTHETIC
    if spec == SYNTHETIC:
        return synthetic_set(size)
    return folder_set(spec, size)


def synthetic_set(size: int, seed: int = CALIBRATION_SEED) -> CalibrationSet:
    def images() -> Iterator[np.ndarray]:
        from ..data import iter_scenes

        for scene in iter_scenes(seed, size, SYNTHETIC_SIZE):
            yield scene.image

    return CalibrationSet(f"{SYNTHETIC} (seed {seed})", size, images)


def folder_set(spec: str, size: int) -> CalibrationSet:
    """`size` images of a folder or glob, evenly spaced over its sorted paths (all if fewer)."""
    from ..engine.images import read_image
    from ..engine.sources import image_paths
    from ..errors import InputError

    try:
        paths = image_paths(spec)
    except InputError as exc:
        raise MaskrtError(f"--calibration: {exc}") from None
    if len(paths) > size:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, size).round()]

    def images() -> Iterator[np.ndarray]:
        for path in paths:
            yield read_image(path)

    return CalibrationSet(str(spec), len(paths), images)
