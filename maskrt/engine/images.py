"""Image inputs: validation and conversion to Tensor-ready np.ndarray[H, W, 3] uint8 RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def as_rgb_uint8(image: object) -> np.ndarray:
    """Accept np.ndarray [H, W, 3] uint8 RGB (as is), grayscale [H, W] or [H, W, 1] (replicated),
    RGBA [H, W, 4] (alpha dropped) or a PIL image; refuse other dtypes and shapes with InputError."""
    if _is_pil(image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array [H, W, 3] uint8 RGB or a PIL image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(
            f"image must be uint8 with values 0-255, got {image.dtype}; "
            "convert it first, e.g. (img * 255).round().astype(np.uint8) for floats in [0, 1]"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must have shape [H, W, 3] (or [H, W], [H, W, 4]), got {list(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image is empty: shape {list(image.shape)}")
    return np.ascontiguousarray(image)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to np.ndarray[H, W, 3] uint8 RGB (EXIF orientation applied)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return decoded_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: {str(exc).splitlines()[0] if str(exc) else 'not an image'}") from None


def decoded_rgb(img) -> np.ndarray:
    """An opened PIL image -> np.ndarray[H, W, 3] uint8 RGB, EXIF orientation applied: how every
    image maskrt reads (files, uploads to `maskrt serve`) becomes pixels."""
    from PIL import ImageOps

    return as_rgb_uint8(ImageOps.exif_transpose(img).convert("RGB"))


def _is_pil(obj: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)
