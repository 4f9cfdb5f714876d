"""What POST /v1/segment accepts: decoding against PIL itself, multipart bodies as `requests`
encodes them, and each refusal's status and one-line reason (no Ray needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from maskrt.serve import uploads
from maskrt.serve.uploads import UploadError
from tests.conftest import random_image


def encoded(image: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def picture(rng):
    return random_image(rng, 48, 64)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decoded_pixels_are_pils(picture, fmt):
    data = encoded(picture, fmt)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # the oracle: PIL's own decode
    got = uploads.decode(data)
    assert got.dtype == np.uint8 and got.shape == (48, 64, 3)
    np.testing.assert_array_equal(got, expected)
    if fmt == "PNG":
        np.testing.assert_array_equal(got, picture)  # lossless


def test_exif_orientation_applied_like_run(picture):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = encoded(picture, "JPEG", exif=exif.tobytes())
    got = uploads.decode(data)
    assert got.shape == (64, 48, 3)  # what maskrt run's read_image gives for the same file


def test_grayscale_and_rgba_pngs_become_rgb(picture):
    gray = uploads.decode(encoded(picture[:, :, 0], "PNG"))
    np.testing.assert_array_equal(gray, np.repeat(picture[:, :, :1], 3, axis=2))
    rgba = np.concatenate([picture, np.full((48, 64, 1), 128, np.uint8)], axis=2)
    np.testing.assert_array_equal(uploads.decode(encoded(rgba, "PNG")), picture)


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "application/octet-stream", None,
                                          "IMAGE/PNG; charset=binary"])
def test_raw_bodies(picture, content_type):
    data = encoded(picture, "PNG")
    assert uploads.image_bytes(content_type, data) == (data, None)


def test_multipart_as_requests_encodes_it(picture):
    data = encoded(picture, "PNG")
    prepared = requests.Request("POST", "http://x/v1/segment", data={"note": "hello"},
                                files={"image": ("cat.png", data, "image/png")}).prepare()
    got, name = uploads.image_bytes(prepared.headers["Content-Type"], prepared.body)
    assert got == data and name == "cat.png"


@pytest.mark.parametrize("case, status, words", [
    ("text", 415, "Content-Type text/plain"),
    ("gif", 415, "not a JPEG or PNG"),
    ("empty", 400, "empty"),
    ("truncated", 400, "does not decode"),
    ("big_body", 413, "limit"),
    ("big_image", 413, "pixels"),
    ("multipart_no_boundary", 400, "boundary"),
    ("multipart_empty_file", 400, "empty"),
])
def test_refusals(picture, case, status, words):
    png = encoded(picture, "PNG")
    with pytest.raises(UploadError) as info:
        if case == "text":
            uploads.image_bytes("text/plain", b"hello")
        elif case == "gif":
            uploads.decode(encoded(picture, "GIF"))
        elif case == "empty":
            uploads.image_bytes("image/png", b"")
        elif case == "truncated":
            uploads.decode(png[: len(png) // 2])
        elif case == "big_body":
            uploads.check_length(str(21 * 1024 * 1024))
        elif case == "big_image":
            uploads.decode(png, max_pixels=48 * 64 - 1)
        elif case == "multipart_no_boundary":
            uploads.image_bytes("multipart/form-data", b"--x\r\n")
        else:
            prepared = requests.Request("POST", "http://x/", files={"image": ("a.png", b"", "image/png")}).prepare()
            uploads.image_bytes(prepared.headers["Content-Type"], prepared.body)
    assert info.value.status == status
    reason = str(info.value)
    assert words in reason and "\n" not in reason


@pytest.mark.parametrize("text, expected", [(None, None), ("", None), ("0.5", 0.5), ("0.75", 0.75), ("1", 1.0)])
def test_score_threshold_accepted(text, expected):
    assert uploads.score_threshold(text, floor=0.5) == expected


@pytest.mark.parametrize("text, words", [("abc", "must be a number"), ("nan", "must be a number"),
                                         ("-0.1", "must be a number"), ("1.5", "must be a number"),
                                         ("0.3", "below this service's threshold 0.5")])
def test_score_threshold_refused(text, words):
    with pytest.raises(UploadError) as info:
        uploads.score_threshold(text, floor=0.5)
    assert info.value.status == 422 and words in str(info.value)
