"""What `POST /v1/segment` accepts: a JPEG or PNG image as the raw body (image/jpeg, image/png,
application/octet-stream) or as the first file of a multipart/form-data body. Everything else is
refused with an UploadError carrying the HTTP status and a one-line reason:

    415  a content type other than those, or bytes that are not a JPEG or PNG
    413  a body over max_bytes, an image over max_pixels (checked from the header, before decoding;
         also an image over PIL's own decompression-bomb bound), a multipart body of over
         MAX_PARTS parts
    408  a body that did not arrive within the gateway's upload deadline (gateway.py)
    400  an empty body, a multipart body without a file or malformed, an image that does not decode
    422  a score_threshold that is not a number in [0, 1]

The gateway checks everything but the pixels (probe: signature, format and size from the header);
the model replicas decode (decode), so a request refused for overload costs no decoding and
decoding scales with the replicas. Decoding is the one `maskrt run` uses for image files
(maskrt.engine.images.decoded_rgb), so the pixels the service segments are the pixels run
segments for the same file.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np

from ..engine.images import decoded_rgb
from ..errors import InputError, first_line

RAW_TYPES = ("image/jpeg", "image/jpg", "image/pjpeg", "image/png", "application/octet-stream")
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_PARTS = 16  # parts of a multipart body (a form with an image and a few fields)


class UploadError(InputError):
    """A request the service refuses: `status` is the HTTP status, str(self) the one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def media_type(content_type: str | None) -> str:
    """'image/PNG; charset=x' -> 'image/png'; a missing header counts as application/octet-stream."""
    if not content_type:
        return "application/octet-stream"
    return content_type.split(";", 1)[0].strip().lower()


def check_length(content_length: str | None, max_bytes: int = MAX_BYTES) -> None:
    """Refuse a declared Content-Length over max_bytes before reading the body (413)."""
    if content_length is None:
        return
    try:
        length = int(content_length)
    except ValueError:
        raise UploadError(400, f"Content-Length {content_length!r} is not a number") from None
    if length > max_bytes:
        raise UploadError(413, f"the body is {length} bytes; the limit is {max_bytes}")


def image_bytes(content_type: str | None, body: bytes, max_bytes: int = MAX_BYTES,
                max_parts: int = MAX_PARTS) -> tuple[bytes, str | None]:
    """(the image's bytes, its multipart file name or None) from a request body."""
    kind = media_type(content_type)
    if len(body) > max_bytes:
        raise UploadError(413, f"the body is over {max_bytes} bytes")
    if kind == "multipart/form-data":
        return _multipart_file(content_type, body, max_parts)
    if kind not in RAW_TYPES:
        raise UploadError(415, f"Content-Type {kind} is not accepted: send image/jpeg, image/png, "
                               "application/octet-stream or multipart/form-data")
    if not body:
        raise UploadError(400, "the body is empty: send the image's bytes")
    return body, None


class _Part:
    """One part of a multipart body as python-multipart's callbacks deliver it."""

    def __init__(self):
        self.headers: list[tuple[bytes, bytes]] = []
        self.field, self.value, self.data = bytearray(), bytearray(), []

    def filename(self) -> str | None:
        from python_multipart.multipart import parse_options_header

        for name, value in self.headers:
            if name.strip().lower() == b"content-disposition":
                found = parse_options_header(value)[1].get(b"filename")
                return found.decode("utf-8", "replace") if found is not None else None
        return None


def _multipart_file(content_type: str, body: bytes, max_parts: int = MAX_PARTS) -> tuple[bytes, str | None]:
    """The first part with a file name (else the first part) of a multipart/form-data body,
    parsed by python-multipart (the parser Starlette uses): at most max_parts parts (413 past
    that, found while parsing: the parser stops there), each with at most 8 headers of 4 KB."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary")
    parts: list[_Part] = []

    def begin():
        if len(parts) >= max_parts:
            raise UploadError(413, f"the multipart body has over {max_parts} parts")
        parts.append(_Part())

    def header_end():
        parts[-1].headers.append((bytes(parts[-1].field), bytes(parts[-1].value)))
        parts[-1].field, parts[-1].value = bytearray(), bytearray()

    callbacks = {"on_part_begin": begin, "on_header_end": header_end,
                 "on_header_field": lambda d, i, j: parts[-1].field.extend(d[i:j]),
                 "on_header_value": lambda d, i, j: parts[-1].value.extend(d[i:j]),
                 "on_part_data": lambda d, i, j: parts[-1].data.append(d[i:j])}
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise UploadError(400, f"the multipart body is malformed ({first_line(exc)})") from None
    if not parts:
        raise UploadError(400, "the multipart body has no parts")
    chosen = next((p for p in parts if p.filename()), parts[0])
    payload = b"".join(chosen.data)
    if not payload:
        raise UploadError(400, "the multipart file is empty")
    return payload, chosen.filename()


def checked_upload(content_type: str | None, body: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                   max_parts: int = MAX_PARTS) -> tuple[bytes, str | None]:
    """What the gateway does with a body (on a worker thread): image_bytes, then probe."""
    data, name = image_bytes(content_type, body, max_bytes, max_parts)
    probe(data, max_pixels)
    return data, name


def probe(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the image's header alone (no pixels decoded): the gateway's cheap check."""
    return _open(data, max_pixels, lambda img: img.size)


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """JPEG/PNG bytes -> np.ndarray[H, W, 3] uint8 RGB (EXIF orientation applied, like `maskrt run`)."""
    return _open(data, max_pixels, decoded_rgb)


def _open(data: bytes, max_pixels: int, then):
    """then(opened PIL image) once the bytes are a JPEG or PNG of at most max_pixels pixels."""
    from PIL import Image, UnidentifiedImageError

    if not any(data.startswith(sig) for sig in SIGNATURES):
        raise UploadError(415, "the data is not a JPEG or PNG image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in SIGNATURES.values():
                raise UploadError(415, f"{img.format} images are not accepted: send JPEG or PNG")
            width, height = img.size
            if width * height > max_pixels:
                raise UploadError(413, f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels")
            return then(img)
    except Image.DecompressionBombError as exc:  # over PIL's own bound (2 x MAX_IMAGE_PIXELS): too large too
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{found.group(1)} pixels" if found else "too many pixels"
        raise UploadError(413, f"the image has {size}; the limit is {max_pixels} pixels") from None
    except UnidentifiedImageError:  # PIL's text names the BytesIO object, not the upload
        raise UploadError(400, "the image does not decode (not a readable JPEG or PNG)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(400, f"the image does not decode ({first_line(exc)})") from None


def score_threshold(text: str | None, floor: float) -> float | None:
    """The score_threshold query parameter: None when absent (the service's own threshold, `floor`,
    applies); a float in [floor, 1] otherwise. Detections were already cut at `floor` when the
    replicas loaded the model, so a lower value cannot be answered (422)."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UploadError(422, f"score_threshold must be a number in [0, 1], got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise UploadError(422, f"score_threshold must be a number in [0, 1], got {text!r}")
    if value < floor:
        raise UploadError(422, f"score_threshold {value} is below this service's threshold {floor} "
                               f"(start maskrt serve with --score-threshold {value} or lower)")
    return value
