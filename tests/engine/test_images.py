"""Image input handling: conversions that are safe, and one clear refusal for the rest."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maskrt.engine.images import as_rgb_uint8, read_image
from maskrt.errors import InputError


def test_rgb_passes_through_unchanged():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(as_rgb_uint8(img), img)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_grayscale_is_replicated(shape):
    gray = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = as_rgb_uint8(gray)
    assert out.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray.reshape(4, 5))


def test_rgba_drops_alpha():
    rgba = np.random.default_rng(0).integers(0, 256, size=(4, 5, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb_uint8(rgba), rgba[:, :, :3])


def test_pil_image_is_converted():
    img = Image.new("L", (5, 4), color=77)
    out = as_rgb_uint8(img)
    assert out.shape == (4, 5, 3) and (out == 77).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int64, bool])
def test_non_uint8_is_refused_with_advice(dtype):
    with pytest.raises(InputError, match="must be uint8") as info:
        as_rgb_uint8(np.zeros((4, 5, 3), dtype=dtype))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("shape", [(4, 5, 2), (2, 4, 5, 3), (5,), (0, 5, 3)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(InputError):
        as_rgb_uint8(np.zeros(shape, dtype=np.uint8))


def test_other_types_are_refused():
    with pytest.raises(InputError, match="numpy array"):
        as_rgb_uint8([[1, 2, 3]])


def test_read_image_files(tmp_path):
    Image.new("RGBA", (7, 3), color=(10, 20, 30, 40)).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (3, 7, 3) and tuple(out[0, 0]) == (10, 20, 30)
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "b.png")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_segmenter_accepts_grayscale_and_rgba(small_checkpoint):
    import maskrt

    seg = maskrt.load(small_checkpoint, score_threshold=0.01, backend="torch")
    gray = np.random.default_rng(0).integers(0, 256, size=(120, 160), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((120, 160, 1), 255, np.uint8)], axis=2)
    expected = seg(rgb)
    for variant in (gray, rgba):
        dets = seg(variant)
        np.testing.assert_array_equal(dets.boxes, expected.boxes)
        assert dets.masks.shape == (len(dets), 120, 160)
    with pytest.raises(InputError):
        seg(rgb.astype(np.float32) / 255)


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    """Issue 16, item 9: read_image clipped 16-bit PNGs to 0/255. The PNG is written by PIL
    from a uint16 ramp over the whole range; the oracle is the exact rounding of v * 255 / 65535,
    computed in float64 (exact for these integers)."""
    ramp = np.linspace(0, 65535, 40 * 64).round().astype(np.uint16).reshape(40, 64)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as check:
        assert check.mode.startswith("I;16")  # really a 16-bit file
    out = read_image(tmp_path / "g16.png")
    expected = np.floor(ramp.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    assert out.shape == (40, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)
    assert len(np.unique(out)) == 256, "every 8-bit level is used, not just 0 and 255"


def test_float_and_32_bit_images_are_refused_in_one_line(tmp_path):
    Image.fromarray(np.full((4, 5), 0.5, np.float32)).save(tmp_path / "f.tif")
    Image.fromarray(np.full((4, 5), 1 << 20, np.int32)).save(tmp_path / "i32.tif")
    for name, message in (("f.tif", "floating-point"), ("i32.tif", "outside 0-65535")):
        with pytest.raises(InputError, match=message) as info:
            read_image(tmp_path / name)
        assert "\n" not in str(info.value)
