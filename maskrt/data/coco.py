"""COCO "instances" export of synthetic shapes scenes.

Layout written by :func:`generate_coco_dataset`::

    out_dir/
        images/000000.png, 000001.png, ...   (RGB PNG; image id = file index)
        annotations.json                     (COCO instances format)

Annotations: ``bbox`` is ``[x, y, w, h]`` in pixel-edge coordinates (the tight box of
the visible mask), ``area`` the visible mask's pixel count, ``iscrowd`` 0 and
``segmentation`` a compressed RLE from :func:`pycocotools.mask.encode` with ``counts``
as ``str``.  Category ids are ``1..4`` (see :data:`maskrt.data.shapes.CLASS_NAMES`),
supercategory ``"shape"``.  Annotation ids start at 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from maskrt.data.shapes import CLASS_NAMES, Scene, SizeSpec, iter_scenes

SUPERCATEGORY = "shape"


def coco_categories() -> list[dict[str, Any]]:
    """COCO ``categories`` list: ids ``1..4`` with names from ``CLASS_NAMES``."""
    return [
        {"id": i + 1, "name": name, "supercategory": SUPERCATEGORY}
        for i, name in enumerate(CLASS_NAMES)
    ]


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Compressed COCO RLEs (``{"size": [H, W], "counts": str}``) of ``(N, H, W)`` bool masks."""
    if masks.shape[0] == 0:
        return []
    stacked = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
    rles = mask_utils.encode(stacked)
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}
            for r in rles]


def scene_annotations(
    scene: Scene, image_id: int, first_id: int, track_ids: bool = False
) -> list[dict[str, Any]]:
    """COCO annotation dicts for every instance of ``scene``, with ids from ``first_id``.

    With ``track_ids`` each annotation also carries ``"track_id"`` (the object id).
    """
    anns = []
    rles = encode_masks(scene.masks)
    for k, rle in enumerate(rles):
        x1, y1, x2, y2 = (float(v) for v in scene.boxes[k])
        ann = {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": int(scene.labels[k]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": int(scene.masks[k].sum()),
            "iscrowd": 0,
            "segmentation": rle,
        }
        if track_ids:
            ann["track_id"] = int(scene.object_ids[k])
        anns.append(ann)
    return anns


def image_record(image_id: int, file_name: str, height: int, width: int, **extra: Any) -> dict:
    """COCO ``images`` entry (extra keys, e.g. ``frame_index``, are appended)."""
    return {"id": image_id, "file_name": file_name, "height": height, "width": width, **extra}


def coco_document(images: list[dict], annotations: list[dict], **extra: Any) -> dict[str, Any]:
    """Complete COCO instances document; ``extra`` top-level keys (``info``, ``videos``) kept."""
    doc: dict[str, Any] = dict(extra)
    doc.update(images=images, annotations=annotations, categories=coco_categories())
    return doc


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``target``; on success move it to ``target``.

    On any exception the temporary directory is removed and ``target`` is left untouched.
    An existing ``target`` raises :class:`FileExistsError` unless ``overwrite`` is true,
    in which case it is replaced only after the new content is complete.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``, replacing an existing ``target`` directory or file."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def _save_png(image: np.ndarray, path: Path) -> None:
    """Write a ``(H, W, 3)`` uint8 RGB array as PNG."""
    Image.fromarray(image).save(path, format="PNG")


def generate_coco_dataset(
    out_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    size: SizeSpec = (320, 320),
    *,
    overwrite: bool = False,
    **scene_kwargs: Any,
) -> Path:
    """Write ``num_images`` scenes of dataset ``seed`` as a COCO dataset in ``out_dir``.

    ``size`` is ``(H, W)`` or a per-image inclusive range ``((h0, h1), (w0, w1))``.
    Image ``i`` is ``make_scene(seed, i, size, **scene_kwargs)`` (same seed ->
    identical dataset), stored as ``images/{i:06d}.png`` with image id ``i``.
    Everything is written into a temporary sibling directory renamed to ``out_dir`` at
    the end, so a crash never leaves a partial dataset.  Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        images: list[dict] = []
        annotations: list[dict] = []
        for i, scene in enumerate(iter_scenes(seed, num_images, size, **scene_kwargs)):
            name = f"{i:06d}.png"
            _save_png(scene.image, tmp / "images" / name)
            h, w = scene.image.shape[:2]
            images.append(image_record(i, name, h, w))
            annotations += scene_annotations(scene, i, len(annotations) + 1)
        info = {"description": "maskrt synthetic shapes", "seed": seed, "num_images": num_images}
        doc = coco_document(images, annotations, info=info)
        (tmp / "annotations.json").write_text(json.dumps(doc))
    return out_dir
