"""One engine call cut into its compiled stages and the glue between them, timed in place.

`StepTimes(seg)` wraps the callables of the segmenter's Detector (instance attributes, restored
on exit) and times each step of real calls (no step is re-run on cached inputs):

- stages: dense, box stage, mask stage (the compiled models, row padding included);
- glue: preprocess + rescale (detect minus run), proposals (top-k, decode, clip, NMS per
  level), RoIAlign for the box head and for the mask head, box decode + class-wise NMS, mask
  selection (own-class sigmoid), paste (the fused id-map paste, as the stream makes it).

glue = the whole call minus the three stages, so nothing is left out of either side.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

STAGES = ("dense", "box stage", "mask stage")


class StepTimes:
    """Per-step seconds of calls made inside `with StepTimes(seg) as t: t.call(image)`."""

    def __init__(self, seg):
        self.seg = seg
        self.detector = seg.backend.detector
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._saved: list[tuple[object, str, object]] = []
        self._current: dict[str, float] = {}

    def _wrap(self, obj, name: str, key) -> None:
        fn = getattr(obj, name)
        self._saved.append((obj, name, obj.__dict__.get(name)))

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            step = key(*args) if callable(key) else key
            self._current[step] = self._current.get(step, 0.0) + time.perf_counter() - start
            return out

        setattr(obj, name, timed)

    def __enter__(self) -> "StepTimes":
        d, heads = self.detector, self.detector.heads
        self._wrap(d, "dense", "dense")
        self._wrap(d, "run", "run")
        self._wrap(d.proposals, "one_image", "proposals")
        self._wrap(heads, "box_fn", "box stage")
        self._wrap(heads, "mask_fn", "mask stage")
        self._wrap(heads, "_pool", lambda features, boxes, scales, size, *stage: f"roi_align {size}x{size}")
        self._wrap(heads, "_postprocess", "box decode + nms")
        self._wrap(heads, "_masks", "masks")
        return self

    def __exit__(self, *exc) -> None:
        for obj, name, original in reversed(self._saved):
            if original is None:
                delattr(obj, name)
            else:
                setattr(obj, name, original)

    def call(self, image) -> dict[str, float]:
        """One image through the segmenter and the fused paste; returns this call's step seconds."""
        self._current = {}
        start = time.perf_counter()
        dets = self.seg(image)
        called = time.perf_counter()
        dets.instances  # noqa: B018 - the paste the stream makes
        end = time.perf_counter()
        c = self._current
        steps = {k: v for k, v in c.items() if k not in ("run", "masks")}
        steps["preprocess + rescale"] = (called - start) - c["run"]
        mask_pool = next((v for k, v in c.items() if k.startswith("roi_align") and k != self._box_pool_key()), 0.0)
        steps["mask selection"] = c.get("masks", 0.0) - c.get("mask stage", 0.0) - mask_pool
        steps["paste"] = end - called
        steps["total"] = end - start
        steps["glue"] = steps["total"] - sum(c.get(s, 0.0) for s in STAGES)
        for k, v in steps.items():
            self.samples[k].append(v)
        return steps

    def _box_pool_key(self) -> str:
        size = self.detector.heads.box_pool
        return f"roi_align {size}x{size}"

    def medians_ms(self) -> dict[str, float]:
        return {k: round(1e3 * float(np.median(v)), 3) for k, v in self.samples.items()}


def breakdown(seg, image, calls: int) -> dict:
    """extra_info for a benchmark: median ms per step over `calls` calls (after one warm-up),
    the glue's median share of the call, and the rows the box and mask stages saw."""
    with StepTimes(seg) as timer:
        timer.call(image)
        timer.samples.clear()
        for _ in range(calls):
            timer.call(image)
    ms = timer.medians_ms()
    share = float(np.median(np.array(timer.samples["glue"]) / np.array(timer.samples["total"])))
    return {**{f"ms {k}": v for k, v in ms.items()}, "glue_share": round(share, 4)}
