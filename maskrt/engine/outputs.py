"""Result files: JSON lines per frame (COCO RLE masks), written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from .detections import Detections


def encode_rle(masks: np.ndarray) -> list[dict]:
    """bool [N, H, W] -> COCO compressed RLE dicts {"size": [H, W], "counts": str}."""
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def crop_rle(crop: np.ndarray, region: tuple[int, int, int, int], height: int, width: int) -> dict:
    """COCO compressed RLE of a [height, width] mask that is zero outside `region`.

    crop: bool [y1 - y0, x1 - x0], the mask inside region (x0, y0, x1, y1), exclusive ends.
    Same result as `encode_rle` on the full mask, from an [H, x1 - x0] column band only: COCO
    RLE runs over the image column-major, starting with a (possibly empty) run of zeros.
    """
    x0, y0, x1, y1 = region
    if x1 <= x0 or y1 <= y0:
        counts = [height * width]
    else:
        band = np.zeros((x1 - x0, height), dtype=np.bool_)  # the band's columns, each a row here
        band[:, y0:y1] = crop.T
        flat = band.reshape(-1)
        edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        if flat[0]:
            runs.insert(0, 0)
        runs[0] += x0 * height  # the zero columns left of the band
        after = (width - x1) * height  # and right of it
        if flat[-1]:
            if after:
                runs.append(after)
        else:
            runs[-1] += after
        counts = runs
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def instance_rles(dets: Detections) -> list[dict]:
    """Each instance's COCO compressed RLE: from the fused paste's crops (no full-size masks), or
    from `dets.masks` when those already exist."""
    if dets.has_full_masks:
        return encode_rle(dets.masks)
    h, w = dets.image_size
    pasted = dets.instances
    return [crop_rle(pasted.crop(i).numpy(), region, h, w) for i, region in enumerate(pasted.regions.tolist())]


def instances_json(dets: Detections) -> list[dict]:
    """COCO-results-style instances: bbox [x, y, w, h], score, category_id, segmentation (RLE);
    with tracking also "track_id" (-1: not a confirmed track) and, on an instance carried onto a
    frame the engine skipped, "propagated": true."""
    rles = instance_rles(dets)
    out = []
    for i, rle in enumerate(rles):
        x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
        inst = {
            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "score": round(float(dets.scores[i]), 5),
            "category_id": int(dets.labels[i]),
            "segmentation": rle,
        }
        if dets.track_ids is not None:
            inst["track_id"] = int(dets.track_ids[i])
            if dets.propagated is not None and dets.propagated[i]:
                inst["propagated"] = True
        out.append(inst)
    return out


def frame_record(index: int, time: float | None, dets: Detections, **extra) -> dict:
    """One JSON-lines object: {"frame": i, "time": seconds, "instances": [...]} (+ extra keys)."""
    return {"frame": index, "time": time, **extra, "instances": instances_json(dets)}


class AtomicFile:
    """A file written under a unique temporary name beside `path` and renamed onto it on success;
    on failure the temporary file is removed (or, with keep_partial_on_error, renamed into place
    so an interrupted run keeps what it wrote). See maskrt.safeio.Output (checks, lock)."""

    def __init__(self, path: str | Path, mode: str = "w", keep_partial_on_error: bool = False, what: str = "output"):
        self.path = Path(path)
        self.mode = mode
        self.keep = keep_partial_on_error
        self.what = what
        self._out = None

    def __enter__(self):
        from ..safeio import Output

        self._out = Output(self.path, self.what)
        try:
            return self._out.open(self.mode)
        except BaseException:
            self._out.close(False)
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        self._out.close(keep=exc_type is None or self.keep)


class JsonLinesWriter:
    """Append frame records to a JSON-lines file that appears under its name only when closed."""

    def __init__(self, path: str | Path, keep_partial_on_error: bool = False):
        self._atomic = AtomicFile(path, "w", keep_partial_on_error)
        self._file = None

    def __enter__(self) -> "JsonLinesWriter":
        self._file = self._atomic.__enter__()
        return self

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._atomic.__exit__(exc_type, exc, tb)
