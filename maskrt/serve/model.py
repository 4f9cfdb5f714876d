"""The model deployment: one Segmenter per replica, requests batched across clients with
`@serve.batch`, answered with the per-frame JSON that `maskrt run --json` writes.

A batch (up to max_batch images that arrived within batch_wait_s) is decoded, split into groups
of the same image shape, and each group goes through `backend.infer` in one call: images of one shape
are resized and padded exactly as they would be alone (the batch is padded to its largest image,
which for one shape is every image's own padded size), so batching changes no image's result.
Inference runs on a worker thread, so the replica's event loop keeps answering Serve's health
checks while a batch runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
from ray import serve

from ..engine.detections import Detections
from ..engine.outputs import frame_record
from ..options import LoadOptions
from .uploads import MAX_PIXELS, UploadError, decode


@dataclass(frozen=True)
class ModelSpec:
    """What each replica loads: `maskrt.api.load_with(path, load)`. `engine` is the CPU engine the
    driver built (or found cached) for a checkpoint; replicas use it when that path exists on
    their node and otherwise load `path` themselves (building their own cached engine)."""

    path: str
    engine: str | None = None
    load: LoadOptions = LoadOptions(score_threshold=0.5)

    @property
    def score_threshold(self) -> float:
        """The replicas' own threshold: the lowest a request may ask for."""
        return self.load.score_threshold

    def load_segmenter(self):
        from pathlib import Path

        from ..api import load_with

        source = self.engine if self.engine and Path(self.engine).is_dir() else self.path
        # sizes apply to engine folders too (the CPU engine's dense stage takes any size)
        return load_with(source, self.load)


def segment_record(dets: Detections, classes: list[str], name: str | None = None) -> dict:
    """`maskrt run --json`'s line for one image (frame_record: frame 0, time null, "file" when
    named) with each instance's "category_name" added."""
    record = frame_record(0, None, dets, **({"file": name} if name else {}))
    for inst in record["instances"]:
        cid = inst["category_id"]
        inst["category_name"] = classes[cid] if 0 <= cid < len(classes) else str(cid)
    return record


def above(dets: Detections, threshold: float | None) -> Detections:
    """Detections scoring strictly above `threshold` (torchvision's box_score_thresh rule, which the
    replica's model already applied at its own threshold); all of them for None."""
    return dets if threshold is None else dets.filter(dets.scores > threshold)


class ModelReplica:
    """The body of the `Segmenter` deployment (see app.build_app for its Serve options).

    segment(data, threshold, name) -> {"record": run's JSON line + category names, "timing":
    {"batch", "queue_s", "decode_s", "infer_s", "postprocess_s"}}, or {"error": one line,
    "status": 4xx} for bytes that do not decode. data: the JPEG/PNG bytes the gateway checked
    (uploads.probe); they are decoded here, on the replica's worker thread."""

    def __init__(self, spec: ModelSpec, max_batch: int, batch_wait_s: float, max_pixels: int = MAX_PIXELS,
                 stall_s: float = 120.0):
        self.spec = spec
        self.seg = spec.load_segmenter()
        self.classes = self.seg.classes
        self.segment_batch.set_max_batch_size(max(1, int(max_batch)))
        self.segment_batch.set_batch_wait_timeout_s(float(batch_wait_s))
        self.max_pixels, self.stall_s = max_pixels, stall_s
        self._busy_since: float | None = None

    async def segment(self, data: bytes, threshold: float | None = None, name: str | None = None) -> dict:
        return await self.segment_batch((time.perf_counter(), data, threshold, name))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)  # both set per replica in __init__
    async def segment_batch(self, items: list[tuple]) -> list[dict]:
        return await asyncio.to_thread(self.run_batch, items)

    def run_batch(self, items: list[tuple]) -> list[dict]:
        """items: (arrival perf_counter, image bytes, threshold or None, name or None)."""
        start = time.perf_counter()
        self._busy_since = start
        try:
            out: list[dict | None] = [None] * len(items)
            images, timing = self._decode(items, out, start)
            groups: dict[tuple, list[int]] = {}
            for i, image in images.items():
                groups.setdefault(image.shape, []).append(i)
            for indices in groups.values():
                t0 = time.perf_counter()
                raws = self.seg.backend.infer([images[i] for i in indices])
                share = (time.perf_counter() - t0) / len(indices)
                for i, raw in zip(indices, raws, strict=True):
                    t1 = time.perf_counter()
                    dets = above(Detections.from_tensors(raw.boxes, raw.scores, raw.labels, raw.mask_probs,
                                                         raw.image_size), items[i][2])
                    record = segment_record(dets, self.classes, items[i][3])
                    out[i] = {"record": record, "timing": {**timing[i], "batch": len(images), "infer_s": share,
                                                           "postprocess_s": time.perf_counter() - t1}}
            return out
        finally:
            self._busy_since = None

    def _decode(self, items: list[tuple], out: list, start: float) -> tuple[dict, dict]:
        """({item index: image [H, W, 3] uint8}, {item index: {"queue_s", "decode_s"}}); items whose
        bytes do not decode get their refusal in `out` instead."""
        images, timing = {}, {}
        for i, (arrival, data, _, _) in enumerate(items):
            t0 = time.perf_counter()
            try:
                images[i] = decode(data, self.max_pixels)
            except UploadError as exc:
                out[i] = {"error": str(exc), "status": exc.status}
                continue
            timing[i] = {"queue_s": start - arrival, "decode_s": time.perf_counter() - t0}
        return images, timing

    def describe(self) -> dict:
        return {"model": self.spec.path, "backend": self.seg.backend.name, "classes": self.classes,
                "score_threshold": self.spec.score_threshold}

    def check_health(self) -> None:
        """Serve's health check: a replica whose backend call has not returned for stall_s is wedged
        (Serve then replaces it)."""
        busy = self._busy_since
        if busy is not None and time.perf_counter() - busy > self.stall_s:
            raise RuntimeError(f"a batch has been running for over {self.stall_s:.0f} s")
