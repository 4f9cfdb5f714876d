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


def multipart(parts: int, boundary: bytes = b"b0undary", size: int = 1) -> tuple[str, bytes]:
    body = b"".join(b"--" + boundary + b'\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % i + b"a" * size
                    + b"\r\n" for i in range(parts)) + b"--" + boundary + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary.decode(), body


def test_many_parts_are_refused_after_max_parts_without_parsing_the_rest():
    """Issue 22, item 1: 400k tiny parts (20 MB) held the gateway's event loop 78 s in the MIME
    parser. python-multipart stops at part MAX_PARTS + 1: the time does not grow with the body."""
    import time

    kind, small = multipart(uploads.MAX_PARTS + 1)
    _, huge = multipart(400_000)
    times = []
    for body in (small, huge):
        t0 = time.perf_counter()
        with pytest.raises(UploadError) as info:
            uploads.image_bytes(kind, body, max_bytes=len(huge))
        times.append(time.perf_counter() - t0)
        assert info.value.status == 413 and str(info.value) == f"the multipart body has over {uploads.MAX_PARTS} parts"
    assert times[1] < 0.5, times  # the old parser took seconds for 50k parts on this machine


@pytest.mark.parametrize("body, words", [
    (b"--b0undary\r\nContent-Disposition: form-data; name=\"" + b"a" * 10_000 + b"\"\r\n\r\nx\r\n--b0undary--\r\n",
     "malformed (Maximum header size exceeded)"),
    (b"--b0undary\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(20)) + b"\r\nx\r\n--b0undary--\r\n",
     "malformed"),
    (b"--other\r\n\r\nx\r\n--other--\r\n", "malformed"),
])
def test_malformed_multipart_is_400(body, words):
    with pytest.raises(UploadError) as info:
        uploads.image_bytes("multipart/form-data; boundary=b0undary", body)
    assert info.value.status == 400 and words in str(info.value) and "\n" not in str(info.value)


def test_the_file_part_is_found_among_fields(picture):
    data = encoded(picture, "PNG")
    kind, fields = multipart(3)
    body = fields[: -len(b"--b0undary--\r\n")] + (
        b'--b0undary\r\nContent-Disposition: form-data; name="image"; filename="x y.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--b0undary--\r\n")
    assert uploads.image_bytes(kind, body) == (data, "x y.png")


def huge_png() -> bytes:
    """The header of a 30000x30000 RGB PNG (signature, IHDR, an empty IDAT, IEND; what a client
    would send is larger but opens the same): over PIL's own decompression-bomb bound."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_an_oversized_image_is_413_not_400():
    """Issue 22, item 14: PIL refuses a 30000x30000 image itself (DecompressionBombError) before
    maskrt's own --max-pixels check, and that was answered 400."""
    with pytest.raises(UploadError) as info:
        uploads.probe(huge_png(), max_pixels=40_000_000)
    assert info.value.status == 413
    assert str(info.value) == "the image has 900000000 pixels; the limit is 40000000 pixels"


def test_maskrt_run_refuses_an_oversized_image_in_one_line(tmp_path):
    from maskrt.engine.images import read_image
    from maskrt.errors import InputError

    (tmp_path / "huge.png").write_bytes(huge_png())
    with pytest.raises(InputError, match=r"^cannot read image .*huge.png: Image size \(900000000 pixels\) exceeds"):
        read_image(tmp_path / "huge.png")


def test_undecodable_bytes_do_not_show_a_buffer_repr():
    """Issue 22: the reason read 'cannot identify image file <_io.BytesIO object at 0x...>'."""
    with pytest.raises(UploadError) as info:
        uploads.decode(b"\xff\xd8\xff" + b"\x00" * 64)
    assert info.value.status == 400 and "BytesIO" not in str(info.value) and " at 0x" not in str(info.value)
    assert str(info.value) == "the image does not decode (not a readable JPEG or PNG)"


def image_files(folder, rng) -> dict:
    """One file per kind of PNG/JPEG a client may send: 8- and 16-bit grayscale (16-bit: PIL writes
    mode I;16 as a 16-bit PNG), RGB, RGBA, palette, JPEG with EXIF rotation."""
    image = random_image(rng, 24, 40)
    wide = (rng.integers(0, 65536, (24, 40))).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {"gray8.png": Image.fromarray(image[:, :, 0]), "gray16.png": Image.fromarray(wide),
             "rgb.png": Image.fromarray(image), "rgba.png": Image.fromarray(np.dstack([image, image[:, :, :1]])),
             "palette.png": Image.fromarray(image).convert("P")}
    for name, img in files.items():
        img.save(folder / name)
    Image.fromarray(image).save(folder / "rotated.jpg", exif=exif.tobytes())
    return {name: folder / name for name in [*files, "rotated.jpg"]}


def test_one_decode_path_for_serve_and_run(tmp_path, rng):
    """Issue 22, item 13: an upload and `maskrt run` on the same file must segment the same pixels
    (run reads files with engine.images.read_image; the replicas decode uploads)."""
    from maskrt.engine.images import read_image

    for name, path in image_files(tmp_path, rng).items():
        served, ran = uploads.decode(path.read_bytes()), read_image(path)
        assert served.dtype == np.uint8 and served.shape == ran.shape, name
        np.testing.assert_array_equal(served, ran, err_msg=name)
    with Image.open(tmp_path / "gray16.png") as check:
        assert check.mode.startswith("I;16")  # really a 16-bit file
