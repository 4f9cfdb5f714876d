"""Drawing detections onto frames: mask blend from the id map, box outlines, "name score" labels.

Everything is drawn into one numpy array in one pass: the masks through a 256 x 256 lookup table
indexed by (pixel value, colour value) on the covered pixels of the fused paste's id map, box
outlines as array slices, labels as cached coverage masks (PIL renders each distinct label text
once; its default font, anti-aliased) tinted and blitted with a black plate around them. 100 instances on a 320x240
frame take about a millisecond or two (benchmarks/model_stages: test_render).

Colours: one RGB colour per instance, `colors` uint8 [N, 3] when given; else, with tracking
(Detections.track_ids), the colour of the instance's track, so an object keeps its colour from frame
to frame (grey for a detection not yet confirmed, id -1); else `instance_color(i)` for instance i
(golden-ratio hue steps). With tracking a label shows the id ("circle #7 0.93"), and a propagated
instance (carried over a frame the engine skipped) has a thin outline and no score.
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np

from .detections import Detections

BOX_WIDTH = 2
CARRIED_BOX_WIDTH = 1  # a propagated instance's outline
UNTRACKED_COLOR = (160, 160, 160)  # a detection with track id -1


def instance_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour per instance index (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def instance_colors(n: int, colors=None) -> np.ndarray:
    """uint8 [n, 3]: `colors` checked (n RGB rows), or instance_color(i) for i < n."""
    if colors is None:
        return _default_colors(max(n, 1))[:n]
    colors = np.asarray(colors)
    if colors.shape != (n, 3):
        raise ValueError(f"colors must be [{n}, 3] (one RGB colour per detection), got {list(colors.shape)}")
    return colors.astype(np.uint8)


def detection_colors(dets: Detections, colors=None) -> np.ndarray:
    """uint8 [N, 3]: `colors` checked; else by track id (UNTRACKED_COLOR for -1) when `dets` carry
    track ids; else instance_color(i)."""
    if colors is None and dets.track_ids is not None:
        colors = [instance_color(int(t)) if t >= 0 else UNTRACKED_COLOR for t in dets.track_ids]
    return instance_colors(len(dets), colors)


@functools.lru_cache(maxsize=8)
def _default_colors(n: int) -> np.ndarray:
    size = 1 << (n - 1).bit_length()  # cached per power of two
    table = np.array([instance_color(i) for i in range(size)], dtype=np.uint8)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=4)
def blend_table(alpha: float) -> np.ndarray:
    """uint8 [256, 257]: [pixel, colour] -> round(pixel * (1 - alpha) + colour * alpha), computed in
    float32 as a per-pixel blend would (products rounded to float32, then the sum; round half to
    even); column 256 leaves the pixel as it is (background)."""
    values = np.arange(256, dtype=np.float32)
    table = np.empty((256, 257), np.uint8)
    blend = values[:, None] * np.float32(1.0 - alpha) + values[None, :] * np.float32(alpha)
    table[:, :256] = blend.round().clip(0, 255).astype(np.uint8)
    table[:, 256] = np.arange(256)
    table.flags.writeable = False
    return table


def blend_masks(image: np.ndarray, dets: Detections, alpha: float = 0.5, colors=None) -> np.ndarray:
    """Tint every instance pixel with the colour of the instance on top there (the fused paste's
    id map: highest score wins), in one pass over the covered pixels per channel through
    blend_table; returns a new uint8 [H, W, 3] array."""
    out = image.copy()
    if len(dets) == 0:
        return out
    palette = detection_colors(dets, colors).astype(np.uint32)
    ids = dets.instances.id_map.numpy().reshape(-1)
    covered = np.flatnonzero(ids >= 0)
    top = ids[covered]
    table = blend_table(float(alpha))[:, :256].reshape(-1)
    flat = out.reshape(-1, 3)
    for c in range(3):
        index = flat[covered, c].astype(np.uint32) * 256 + palette[top, c]
        flat[covered, c] = table.take(index)
    return out


def draw_detections(image: np.ndarray, dets: Detections, classes: list[str], alpha: float = 0.5,
                    fps: float | None = None, colors=None) -> np.ndarray:
    """image: uint8 [H, W, 3] RGB -> annotated copy (masks, boxes, "name score" labels, optional fps).

    colors: uint8 [N, 3], one colour per detection (default: detection_colors)."""
    palette = detection_colors(dets, colors)
    canvas = blend_masks(image, dets, alpha, palette)
    # drawn from the values the JSON lines hold (boxes to 3 decimals, scores to 5), so that two
    # runs whose JSON agrees draw the same pixels even if their floats differ in the last bits
    boxes = np.round(np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4), 3)
    corners = np.floor(boxes + 0.5).astype(np.int64)  # pixel (x, y) nearest each corner
    for i in range(len(dets)):
        carried = dets.propagated is not None and bool(dets.propagated[i])
        draw_box(canvas, corners[i], palette[i], CARRIED_BOX_WIDTH if carried else BOX_WIDTH)
        draw_label(canvas, corners[i, 0], corners[i, 1], label_text(dets, i, classes, carried), palette[i])
    if fps is not None:
        draw_label(canvas, 4, 4, f"{fps:.1f} fps", np.array([255, 255, 255], np.uint8))
    return canvas


def label_text(dets: Detections, i: int, classes: list[str], carried: bool) -> str:
    """"name", then " #id" for a confirmed track, then " score" (as the JSON holds it, 2 decimals)
    unless the instance was carried over a skipped frame."""
    label = int(dets.labels[i])
    text = classes[label] if 0 <= label < len(classes) else str(label)
    if dets.track_ids is not None and dets.track_ids[i] >= 0:
        text += f" #{int(dets.track_ids[i])}"
    if not carried:
        text += f" {round(float(dets.scores[i]), 5):.2f}"
    return text


def draw_box(canvas: np.ndarray, corners, color, width: int = BOX_WIDTH) -> None:
    """Outline the pixels x0..x1, y0..y1 (inclusive; corners int [4]) `width` pixels inwards,
    clipped to the canvas (as PIL's rectangle(..., width=width) for boxes of at least 2 * width)."""
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in corners)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1 + 1, w), min(y1 + 1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    for a, b in ((y0, y0 + width), (y1 - width + 1, y1 + 1)):  # top, bottom rows
        a, b = max(a, cy0), min(b, cy1)
        if b > a:
            canvas[a:b, cx0:cx1] = color
    for a, b in ((x0, x0 + width), (x1 - width + 1, x1 + 1)):  # left, right columns
        a, b = max(a, cx0), min(b, cx1)
        if b > a:
            canvas[cy0:cy1, a:b] = color


def draw_label(canvas: np.ndarray, x: int, y: int, text: str, color) -> None:
    """`text` in `color` at text origin (x, y) on a black plate reaching 1 pixel beyond its
    bounding box on each side (PIL's textbbox, inclusive of its right and bottom ends), clipped."""
    weight, (left, top) = label_plate(text)
    h, w = canvas.shape[:2]
    py0, px0 = int(y) + top - 1, int(x) + left - 1
    ys = slice(max(py0, 0), min(py0 + weight.shape[0], h))
    xs = slice(max(px0, 0), min(px0 + weight.shape[1], w))
    if ys.start < ys.stop and xs.start < xs.stop:
        part = weight[ys.start - py0:ys.stop - py0, xs.start - px0:xs.stop - px0]
        canvas[ys, xs] = (part * np.asarray(color, np.uint16) + 127) // 255


@functools.lru_cache(maxsize=4096)
def label_plate(text: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(coverage uint16 [h + 3, w + 3, 1] in 0..255 of `text` in PIL's default font over its
    bounding box [h, w] (getbbox), placed at (1, 1) in a black plate; (left, top): that box's
    offset from the text origin). Rendered once per distinct text."""
    font = _font()
    left, top, right, bottom = font.getbbox(text)
    core, (ox, oy) = font.getmask2(text, mode="L")
    mask = np.asarray(core, dtype=np.uint8).reshape(core.size[1], core.size[0])
    plate = np.zeros((bottom - top + 3, right - left + 3, 1), np.uint16)
    box = plate[1:-2, 1:-2, 0]
    dy, dx = oy - top, ox - left  # where the rendered mask sits in the box (0, 0 for this font)
    sy, sx = max(0, -dy), max(0, -dx)
    ch, cw = min(mask.shape[0], box.shape[0] - dy) - sy, min(mask.shape[1], box.shape[1] - dx) - sx
    if ch > 0 and cw > 0:
        box[dy + sy:dy + sy + ch, dx + sx:dx + sx + cw] = mask[sy:sy + ch, sx:sx + cw]
    plate.flags.writeable = False
    return plate, (left, top)


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.load_default()
