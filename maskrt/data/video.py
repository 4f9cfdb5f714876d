"""Synthetic shapes videos with exact per-frame instance masks.

Objects (circles, squares, triangles, stars) move at constant velocity over a static
textured background, spin, breathe in size, occlude each other in a fixed depth order
(object ``k`` is drawn over objects ``< k``) and enter or leave the frame.  Every
object is placed so that it is inside the frame at some random time of the clip.
Options add events that test tracking (:mod:`maskrt.data.motion`): crossings,
occluders, objects that leave and return, speed changes, a panning camera.
Frames use the exact rasterisation of :mod:`maskrt.data.shapes`: in every frame,
objects with fewer than ``min_area`` visible pixels are not drawn at all, and the
others are painted on exactly their visible-mask pixels.  Object texture lives in
the object's own frame, so it moves and rotates with it.

:func:`generate_video` writes an H.264 (libx264, yuv420p) MP4 plus ground truth in
``path.with_suffix(".json")``: a COCO instances document with one image per frame
(``id`` = ``frame_index`` = frame number from 0, ``file_name`` ``"frame_000000"``),
annotations with RLE masks and a ``track_id`` (stable object id), and
``"videos": [{"id", "file_name", "fps", "num_frames", "height", "width", "seed", "events"}]``
(``events``: the options of :class:`maskrt.data.motion.VideoEvents`).
H.264 is lossy: the ground truth describes the rendered RGB frames (as yielded by
:func:`iter_video_frames`), not the decoded ones.  ``H`` and ``W`` must be even.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from maskrt.data.coco import coco_document, image_record, scene_annotations
from maskrt.data.geometry import resolve_visibility, shape_mask
from maskrt.data.motion import (  # noqa: F401  (MovingShape re-exported)
    MovingShape,
    VideoEvents,
    apply_events,
    camera_offset,
    occluder_bands,
    sample_moving_shapes,
    shift,
)
from maskrt.data.painting import (
    Appearance,
    flat_appearance,
    paint_objects,
    render_background,
    sample_appearance,
)
from maskrt.data.shapes import PAINT_MODES, Scene, build_scene, split_rng


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
    crossings: int = 0,
    occluders: int = 0,
    returns: int = 0,
    speed_changes: int = 0,
    pan: float = 0.0,
) -> Iterator[tuple[int, Scene]]:
    """Yield ``(frame_index, Scene)`` for a synthetic clip, without encoding anything.

    Frame ``i`` shows time ``i / fps``.  ``Scene.object_ids`` are stable track ids.
    Same arguments -> identical frames.  ``paint`` is as in
    :func:`maskrt.data.shapes.render_scene` (motion does not depend on it).  ``crossings``,
    ``occluders``, ``returns``, ``speed_changes`` and ``pan`` (pixels per second) add the
    events of :mod:`maskrt.data.motion`; without them the clip is unchanged.
    """
    if paint not in PAINT_MODES:
        raise ValueError(f"paint must be one of {PAINT_MODES}, got {paint!r}")
    events = VideoEvents(crossings, occluders, returns, speed_changes, float(pan))
    height, width = int(size[0]), int(size[1])
    layout_rng, bg_rng, obj_rng = split_rng(np.random.default_rng(seed), 3)
    objects = sample_moving_shapes(layout_rng, height, width, num_frames / fps,
                                   num_objects, min_size, max_size_frac)
    objects = apply_events(objects, events, seed, height, width, num_frames / fps)
    offsets = [camera_offset(index / fps, events.pan) for index in range(num_frames)]
    low = min(offsets)
    scene_width = width + max(offsets) - low  # the background a panning camera sweeps
    if paint == "flat":
        background = np.zeros((height, scene_width, 3), dtype=np.uint8)
    else:
        background = render_background(bg_rng, height, scene_width)
        apps = _video_appearances(obj_rng, background, len(objects), min_contrast, max_texture)
    bands = occluder_bands(events, seed, width, scene_width)
    for index in range(num_frames):
        left = offsets[index] - low  # the frame's first column in the scene
        shapes = [o.at(index / fps) for o in objects]
        if offsets[index]:
            shapes = [shift(s, -offsets[index]) for s in shapes]
        full = [shape_mask(s, height, width) for s in shapes]
        if bands:
            hidden = np.zeros(width, dtype=bool)
            for x0, x1 in bands:
                hidden[max(0, x0 - left):max(0, x1 - left)] = True
            full = [m & ~hidden[None, :] for m in full]
        keep, visible = resolve_visibility(full, min_area)
        kept = [shapes[i] for i in keep]
        kept_apps = ([flat_appearance(k) for k in range(len(keep))] if paint == "flat"
                     else [apps[i] for i in keep])
        frame_background = background[:, left:left + width]
        image = frame_background.copy() if paint == "background" else paint_objects(
            frame_background, kept, visible, kept_apps)
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
        events = VideoEvents(**{k: v for k, v in frame_kwargs.items() if k in VideoEvents.__dataclass_fields__})
        video = {"id": 1, "file_name": path.name, "fps": float(rate), "num_frames": num_frames,
                 "height": height, "width": width, "seed": seed, "events": events.as_dict()}
        gt.open("w").write(json.dumps(coco_document(images, annotations, videos=[video])))
    return path
