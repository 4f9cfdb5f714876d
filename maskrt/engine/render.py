"""Drawing detections onto frames: per-instance mask blend, box outline, class name and score.

With tracking (Detections.track_ids) an instance is coloured by its track, so an object keeps its
colour from frame to frame, and its label shows the id ("circle #7 0.93"); a detection not yet
confirmed (id -1) is grey; a propagated instance (carried over a frame the engine skipped) has a
thin outline and no score."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .detections import Detections


def instance_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour per instance index (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


UNTRACKED_COLOR = (160, 160, 160)  # a detection with track id -1


def instance_colors(dets: Detections) -> list[tuple[int, int, int]]:
    """Each instance's RGB colour: by its index, or with tracking by its track id (grey for -1)."""
    if dets.track_ids is None:
        return [instance_color(i) for i in range(len(dets))]
    return [instance_color(int(t)) if t >= 0 else UNTRACKED_COLOR for t in dets.track_ids]


def blend_masks(image: np.ndarray, dets: Detections, alpha: float = 0.5) -> np.ndarray:
    """Tint every instance pixel with the colour of the instance on top there (the fused paste's
    id map: highest score wins), in one pass; returns a new uint8 [H, W, 3] array."""
    out = image.copy()
    if len(dets) == 0:
        return out
    ids = dets.instances.id_map.numpy()
    covered = ids >= 0
    colors = np.array(instance_colors(dets), dtype=np.float32)
    tinted = image[covered].astype(np.float32) * (1.0 - alpha) + colors[ids[covered]] * alpha
    out[covered] = tinted.round().clip(0, 255).astype(np.uint8)
    return out


def draw_detections(image: np.ndarray, dets: Detections, classes: list[str], alpha: float = 0.5,
                    fps: float | None = None) -> np.ndarray:
    """image: uint8 [H, W, 3] RGB -> annotated copy (masks, boxes, "name score" labels, optional fps)."""
    canvas = Image.fromarray(blend_masks(image, dets, alpha))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, color in enumerate(instance_colors(dets)):
        # drawn from the values the JSON lines hold (boxes to 3 decimals, scores to 5), so that two
        # runs whose JSON agrees draw the same pixels even if their floats differ in the last bits
        x1, y1, x2, y2 = (round(float(v), 3) for v in dets.boxes[i])
        carried = dets.propagated is not None and bool(dets.propagated[i])
        draw.rectangle((x1, y1, x2, y2), outline=color, width=1 if carried else 2)
        label = int(dets.labels[i])
        text = classes[label] if 0 <= label < len(classes) else str(label)
        if dets.track_ids is not None and dets.track_ids[i] >= 0:
            text += f" #{int(dets.track_ids[i])}"
        if not carried:
            text += f" {round(float(dets.scores[i]), 5):.2f}"
        _label(draw, font, (x1, y1), text, color)
    if fps is not None:
        _label(draw, font, (4, 4), f"{fps:.1f} fps", (255, 255, 255))
    return np.asarray(canvas)


def _label(draw: ImageDraw.ImageDraw, font, xy: tuple[float, float], text: str, color) -> None:
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(0, 0, 0))
    draw.text(xy, text, fill=color, font=font)
