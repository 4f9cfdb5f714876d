"""Synthetic shapes videos with exact per-frame instance masks.

Objects (circles, squares, triangles, stars) move at constant velocity over a static
textured background, spin, breathe in size, occlude each other in a fixed depth order
(object ``k`` is drawn over objects ``< k``) and enter or leave the frame.  Every
object is placed so that it is inside the frame at some random time of the clip.
Frames use the exact rasterisation of :mod:`maskrt.data.shapes`: in every frame,
objects with fewer than ``min_area`` visible pixels are not drawn at all, and the
others are painted on exactly their visible-mask pixels.  Object texture lives in
the object's own frame, so it moves and rotates with it.

:func:`generate_video` writes an H.264 (libx264, yuv420p) MP4 plus ground truth in
``path.with_suffix(".json")``: a COCO instances document with one image per frame
(``id`` = ``frame_index`` = frame number from 0, ``file_name`` ``"frame_000000"``),
annotations with RLE masks and a ``track_id`` (stable object id), and
``"videos": [{"id", "file_name", "fps", "num_frames", "height", "width", "seed"}]``.
H.264 is lossy: the ground truth describes the rendered RGB frames (as yielded by
:func:`iter_video_frames`), not the decoded ones.  ``H`` and ``W`` must be even.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from maskrt.data.coco import coco_document, image_record, scene_annotations
from maskrt.data.geometry import Shape, resolve_visibility, sample_shapes, shape_mask
from maskrt.data.painting import (
    Appearance,
    flat_appearance,
    paint_objects,
    render_background,
    sample_appearance,
)
from maskrt.data.shapes import PAINT_MODES, Scene, build_scene, split_rng


@dataclass(frozen=True)
class MovingShape:
    """Motion of one object; positions in pixels, rates per second.

    ``x0, y0`` is the centre at ``t = 0``, ``vx, vy`` the velocity, ``spin`` the angular
    velocity (rad/s).  The radius oscillates: ``radius * (1 + scale_amp * sin(2 pi
    scale_freq t + scale_phase))``.
    """

    object_id: int
    label: int
    x0: float
    y0: float
    vx: float
    vy: float
    radius: float
    angle0: float
    spin: float
    scale_amp: float
    scale_freq: float
    scale_phase: float

    def at(self, t: float) -> Shape:
        """Geometry at time ``t`` seconds."""
        phase = 2 * math.pi * self.scale_freq * t + self.scale_phase
        scale = 1.0 + self.scale_amp * math.sin(phase)
        return Shape(self.label, self.x0 + self.vx * t, self.y0 + self.vy * t,
                     self.radius * scale, self.angle0 + self.spin * t)


def sample_moving_shapes(
    rng: np.random.Generator,
    height: int,
    width: int,
    duration: float,
    num_objects: tuple[int, int] = (2, 8),
    min_size: float = 8.0,
    max_size_frac: float = 0.5,
) -> list[MovingShape]:
    """Random motions (back to front).  Each object is inside the frame at a random
    crossing time in ``[0, duration]`` and moves at 5%..50% of ``min(H, W)`` per second,
    so objects enter and leave the frame during longer clips."""
    shapes = sample_shapes(rng, height, width, num_objects, min_size, max_size_frac)
    side = min(height, width)
    moving = []
    for k, s in enumerate(shapes):
        speed, heading = rng.uniform(0.05, 0.5) * side, rng.uniform(0, 2 * math.pi)
        vx, vy = speed * math.cos(heading), speed * math.sin(heading)
        t_cross = rng.uniform(0, duration)
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        spin = rng.uniform(-math.pi / 2, math.pi / 2)
        scale_amp, scale_freq = rng.uniform(0, 0.3), rng.uniform(0.1, 0.5)
        phase = rng.uniform(0, 2 * math.pi)
        moving.append(MovingShape(k, s.label, cx - vx * t_cross, cy - vy * t_cross, vx, vy,
                                  s.radius, s.angle, spin, scale_amp, scale_freq, phase))
    return moving


def _video_appearances(
    rng: np.random.Generator, background: np.ndarray, count: int, min_contrast: float,
    max_texture: float,
) -> list[Appearance]:
    """Appearances contrasting with the mean background and with all other objects
    (any two may overlap at some point of the clip)."""
    apps: list[Appearance] = []
    bg_mean = background.reshape(-1, 3).mean(0)
    for _ in range(count):
        refs = [bg_mean] + [a.color for a in apps]
        apps.append(sample_appearance(rng, refs, min_contrast, max_texture))
    return apps


def check_video_size(size: tuple[int, int]) -> tuple[int, int]:
    """Validate ``(H, W)``: positive and even (required by yuv420p); returns ints."""
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0 or height % 2 or width % 2:
        raise ValueError(f"video size (H, W) must be positive and even, got {size}")
    return height, width


def iter_video_frames(
    num_frames: int,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    *,
    fps: float = 30.0,
    num_objects: tuple[int, int] = (2, 8),
    min_size: float = 8.0,
    max_size_frac: float = 0.5,
    min_area: int = 20,
    min_contrast: float = 70.0,
    max_texture: float = 24.0,
    paint: str = "textured",
) -> Iterator[tuple[int, Scene]]:
    """Yield ``(frame_index, Scene)`` for a synthetic clip, without encoding anything.

    Frame ``i`` shows time ``i / fps``.  ``Scene.object_ids`` are stable track ids.
    Same arguments -> identical frames.  ``paint`` is as in
    :func:`maskrt.data.shapes.render_scene` (motion does not depend on it).
    """
    if paint not in PAINT_MODES:
        raise ValueError(f"paint must be one of {PAINT_MODES}, got {paint!r}")
    height, width = int(size[0]), int(size[1])
    layout_rng, bg_rng, obj_rng = split_rng(np.random.default_rng(seed), 3)
    objects = sample_moving_shapes(layout_rng, height, width, num_frames / fps,
                                   num_objects, min_size, max_size_frac)
    if paint == "flat":
        background = np.zeros((height, width, 3), dtype=np.uint8)
    else:
        background = render_background(bg_rng, height, width)
        apps = _video_appearances(obj_rng, background, len(objects), min_contrast, max_texture)
    for index in range(num_frames):
        shapes = [o.at(index / fps) for o in objects]
        keep, visible = resolve_visibility([shape_mask(s, height, width) for s in shapes], min_area)
        kept = [shapes[i] for i in keep]
        kept_apps = ([flat_appearance(k) for k in range(len(keep))] if paint == "flat"
                     else [apps[i] for i in keep])
        image = background.copy() if paint == "background" else paint_objects(
            background, kept, visible, kept_apps)
        yield index, build_scene(image, visible, kept, [objects[i].object_id for i in keep],
                                 kept_apps)


def _open_h264(path: Path, fps: Fraction, height: int, width: int, crf: int):
    """Open an MP4 container with one libx264 yuv420p stream; returns (container, stream)."""
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": str(crf), "preset": "medium"}
    return container, stream


def _encode_frames(
    path: Path, frames: Iterator[tuple[int, Scene]], fps: Fraction, height: int, width: int,
    crf: int,
) -> tuple[list[dict], list[dict]]:
    """Encode ``frames`` to ``path``; return the COCO images and annotations of the clip."""
    images: list[dict] = []
    annotations: list[dict] = []
    container, stream = _open_h264(path, fps, height, width, crf)
    try:
        for index, scene in frames:
            frame = av.VideoFrame.from_ndarray(scene.image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            images.append(image_record(index, f"frame_{index:06d}", height, width,
                                       frame_index=index, video_id=1))
            annotations += scene_annotations(scene, index, len(annotations) + 1, track_ids=True)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    return images, annotations


def generate_video(
    path: str | os.PathLike,
    num_frames: int = 60,
    fps: float = 30,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    *,
    crf: int = 18,
    **frame_kwargs: Any,
) -> Path:
    """Write an H.264 MP4 of :func:`iter_video_frames` and its ground-truth JSON.

    ``size`` is ``(H, W)``, both even (else :class:`ValueError`).  ``fps`` may be an int,
    float or :class:`~fractions.Fraction`.  ``frame_kwargs`` go to
    :func:`iter_video_frames`.  Both files are written under temporary names in the
    target directory and renamed at the end (JSON first, then the video), so a crash
    leaves neither; existing files of those names are replaced (see maskrt.safeio).  Returns ``path``; the
    JSON is ``path.with_suffix(".json")``.
    """
    height, width = check_video_size(size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    from maskrt.safeio import Output

    # both claimed first (checked, locked), written under unique temporary names, JSON renamed first
    with Output(path, "video", seekable=True) as video_out, Output(path.with_suffix(".json"), "ground truth") as gt:
        frames = iter_video_frames(num_frames, (height, width), seed, fps=float(rate),
                                   **frame_kwargs)
        images, annotations = _encode_frames(video_out.temp_path(), frames, rate, height, width, crf)
        video = {"id": 1, "file_name": path.name, "fps": float(rate), "num_frames": num_frames,
                 "height": height, "width": width, "seed": seed}
        gt.open("w").write(json.dumps(coco_document(images, annotations, videos=[video])))
    return path
