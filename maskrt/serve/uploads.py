"""What `POST /v1/segment` accepts: a JPEG or PNG image as the raw body (image/jpeg, image/png,
application/octet-stream) or as the first file of a multipart/form-data body. Everything else is
refused with an UploadError carrying the HTTP status and a one-line reason:

    415  a content type other than those, or bytes that are not a JPEG or PNG
    413  a body over max_bytes, or an image over max_pixels (checked from the header, before decoding)
    400  an empty body, a multipart body without a file, an image that does not decode
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
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np

from ..engine.images import decoded_rgb
from ..errors import InputError

RAW_TYPES = ("image/jpeg", "image/jpg", "image/pjpeg", "image/png", "application/octet-stream")
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000


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


def image_bytes(content_type: str | None, body: bytes, max_bytes: int = MAX_BYTES) -> tuple[bytes, str | None]:
    """(the image's bytes, its multipart file name or None) from a request body."""
    kind = media_type(content_type)
    if len(body) > max_bytes:
        raise UploadError(413, f"the body is over {max_bytes} bytes")
    if kind == "multipart/form-data":
        return _multipart_file(content_type, body)
    if kind not in RAW_TYPES:
        raise UploadError(415, f"Content-Type {kind} is not accepted: send image/jpeg, image/png, "
                               "application/octet-stream or multipart/form-data")
    if not body:
        raise UploadError(400, "the body is empty: send the image's bytes")
    return body, None


def _multipart_file(content_type: str, body: bytes) -> tuple[bytes, str | None]:
    """The first part with a file name (else the first part) of a multipart/form-data body,
    parsed with the standard library's MIME parser."""
    if "boundary=" not in content_type:
        raise UploadError(400, "multipart/form-data without a boundary")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    parts = [p for p in message.iter_parts()] if message.is_multipart() else []
    if not parts:
        raise UploadError(400, "the multipart body has no parts")
    files = [p for p in parts if p.get_filename()] or parts
    payload = files[0].get_payload(decode=True) or b""
    if not payload:
        raise UploadError(400, "the multipart file is empty")
    return payload, files[0].get_filename()


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
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UploadError(400, f"the image does not decode ({first})") from None


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
