"""Drawing detections onto frames: per-instance mask blend, box outline, class name and score."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .detections import Detections


def instance_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour per instance index (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def blend_masks(image: np.ndarray, dets: Detections, alpha: float = 0.5) -> np.ndarray:
    """Tint every instance pixel with the colour of the instance on top there (the fused paste's
    id map: highest score wins), in one pass; returns a new uint8 [H, W, 3] array."""
    out = image.copy()
    if len(dets) == 0:
        return out
    ids = dets.instances.id_map.numpy()
    covered = ids >= 0
    colors = np.array([instance_color(i) for i in range(len(dets))], dtype=np.float32)
    tinted = image[covered].astype(np.float32) * (1.0 - alpha) + colors[ids[covered]] * alpha
    out[covered] = tinted.round().clip(0, 255).astype(np.uint8)
    return out


def draw_detections(image: np.ndarray, dets: Detections, classes: list[str], alpha: float = 0.5,
                    fps: float | None = None) -> np.ndarray:
    """image: uint8 [H, W, 3] RGB -> annotated copy (masks, boxes, "name score" labels, optional fps)."""
    canvas = Image.fromarray(blend_masks(image, dets, alpha))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i in range(len(dets)):
        # drawn from the values the JSON lines hold (boxes to 3 decimals, scores to 5), so that two
        # runs whose JSON agrees draw the same pixels even if their floats differ in the last bits
        x1, y1, x2, y2 = (round(float(v), 3) for v in dets.boxes[i])
        color = instance_color(i)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=2)
        label = int(dets.labels[i])
        name = classes[label] if 0 <= label < len(classes) else str(label)
        _label(draw, font, (x1, y1), f"{name} {round(float(dets.scores[i]), 5):.2f}", color)
    if fps is not None:
        _label(draw, font, (4, 4), f"{fps:.1f} fps", (255, 255, 255))
    return np.asarray(canvas)


def _label(draw: ImageDraw.ImageDraw, font, xy: tuple[float, float], text: str, color) -> None:
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
    draw.text(xy, text, fill=color, font=font)
