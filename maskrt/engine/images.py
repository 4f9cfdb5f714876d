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


_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to np.ndarray[H, W, 3] uint8 RGB (EXIF orientation applied; 16-bit
    grayscale scaled to 8 bits, as `decoded_rgb` does)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return decoded_rgb(img, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {path}: {str(exc).splitlines()[0] if str(exc) else 'not an image'}") from None


def decoded_rgb(img, name: str | Path = "image") -> np.ndarray:
    """An opened PIL image -> np.ndarray[H, W, 3] uint8 RGB, EXIF orientation applied: how every
    image maskrt reads (files, uploads to `maskrt serve`) becomes pixels.

    16-bit grayscale (PNG, TIFF) is scaled to 8 bits, v8 = round(v16 * 255 / 65535), not
    clipped; 32-bit integer and floating-point images, whose range is unknown, are refused."""
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in _HIGH_DEPTH_MODES:
        return as_rgb_uint8(_gray16_to_uint8(np.asarray(img), name))
    if img.mode == "F":
        raise InputError(f"cannot read image {name}: floating-point pixels (mode F) have no known range; "
                         "convert it to 8 or 16 bits")
    return as_rgb_uint8(img.convert("RGB"))


def _gray16_to_uint8(values: np.ndarray, name: str | Path) -> np.ndarray:
    """uint16 (or int32 holding 0..65535) [H, W] -> uint8 [H, W], round(v * 255 / 65535) exactly
    (integer arithmetic: (v * 255 + 32767) // 65535)."""
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise InputError(f"cannot read image {name}: 32-bit integer pixels outside 0-65535; convert it to 8 or 16 bits")
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _is_pil(obj: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)
