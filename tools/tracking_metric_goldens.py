#!/usr/bin/env python
"""TrackEval as the oracle for maskrt.tracking.metrics: goldens.

Makes seeded synthetic ground-truth sequences and predictions derived from them with box jitter,
id switches, fragmentations (a new id mid-track, gaps), missed objects, false positives (some
persistent), frames without ground truth or without predictions, by boxes and by masks; scores
each with TrackEval's own HOTA, CLEAR and Identity metrics (trackeval.metrics, similarity from
TrackEval's _calculate_box_ious / _calculate_mask_ious, ids renumbered as its datasets do) and
stores the sequences and TrackEval's values in tests/tracking/goldens/tracking_metrics.npz and
tracking_metrics.json (with the trackeval version).

Runs in a side environment with TrackEval installed (PyPI `trackeval`, the maintained
numpy-2-compatible packaging of JonathonLuiten/TrackEval; never in maskrt's own):

    /work/side/trackenv/bin/pip install --no-deps trackeval
    /work/side/trackenv/bin/python tools/tracking_metric_goldens.py

tests/tracking/test_metrics_goldens.py checks maskrt's values against these to 1e-6.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "tracking" / "goldens"
BOX_SIZE = (480, 640)  # (height, width) of the box sequences' images
MASK_SIZE = (48, 64)  # of the mask sequences' images: small, so masks store small


@dataclass(frozen=True)
class Scenario:
    """How one ground-truth sequence and its predictions are made."""

    seed: int
    frames: int
    objects: int
    by: str = "box"
    jitter: float = 0.08  # prediction noise std, as a fraction of the object's size
    switches: int = 0  # id swaps between two predicted objects, from a random frame on
    fragments: int = 0  # predicted objects that take a new id from a random frame on
    gaps: int = 0  # predicted objects missing for 2-8 frames, then back with their id
    miss: float = 0.0  # probability that a prediction is missing
    false_positives: float = 0.0  # expected false predictions per frame (half of them persistent)
    empty_gt: int = 0  # frames whose ground truth is empty
    empty_pred: int = 0  # frames whose predictions are empty


SCENARIOS = {
    "clean": Scenario(seed=21, frames=40, objects=6, jitter=0.03),
    "switches": Scenario(seed=22, frames=60, objects=10, switches=4),
    "fragments": Scenario(seed=23, frames=60, objects=10, fragments=4, gaps=4),
    "fp_fn": Scenario(seed=24, frames=60, objects=12, miss=0.2, false_positives=2.0, jitter=0.12),
    "empty_frames": Scenario(seed=25, frames=50, objects=8, switches=2, fragments=2, empty_gt=4, empty_pred=5,
                             false_positives=0.5),
    "masks": Scenario(seed=26, frames=40, objects=6, by="mask", switches=2, fragments=1, miss=0.1,
                      false_positives=0.5, jitter=0.1),
    "no_predictions": Scenario(seed=27, frames=10, objects=3, miss=1.0),
}


def make_sequence(s: Scenario) -> tuple[list, list]:
    """(ground truth, predictions): frames of (ids int64 [N], boxes float64 [N, 4] xyxy)."""
    rng = np.random.default_rng(s.seed)
    height, width = MASK_SIZE if s.by == "mask" else BOX_SIZE
    scale = np.array([width, height], dtype=np.float64)
    size = rng.uniform(0.12, 0.3, size=(s.objects, 2)) * scale
    start = rng.uniform(0.2, 0.8, size=(s.objects, 2)) * scale
    velocity = rng.normal(0, 0.004, size=(s.objects, 2)) * scale
    alive = np.ones((s.objects, s.frames), dtype=np.bool_)
    for i in range(s.objects):
        first, last = sorted(rng.integers(0, s.frames + 1, size=2))
        if last - first >= 5 and i % 2:  # half of the objects live part of the sequence
            alive[i, :first] = alive[i, last:] = False
    gt_ids = 10 * np.arange(1, s.objects + 1)  # not contiguous: renumbering is part of the test
    pred_ids = _predicted_ids(s, rng)
    gaps = _gaps(s, rng)
    empty_gt = set(rng.choice(s.frames, size=s.empty_gt, replace=False).tolist())
    empty_pred = set(rng.choice(s.frames, size=s.empty_pred, replace=False).tolist())
    gt, pred = [], []
    for k in range(s.frames):
        centre = start + k * velocity
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        shown = alive[:, k] & (k not in empty_gt)
        gt.append((gt_ids[shown], _quantize(boxes[shown])))
        kept = alive[:, k] & ~gaps[:, k] & (rng.random(s.objects) >= s.miss) & (k not in empty_pred)
        noisy = boxes + rng.normal(0, s.jitter, size=boxes.shape) * np.tile(size, 2)
        ids, found = pred_ids[kept, k], noisy[kept]
        fp_ids, fp_boxes = _false_positives(s, rng, scale)
        if k in empty_pred:
            fp_ids, fp_boxes = fp_ids[:0], fp_boxes[:0]
        pred.append((np.concatenate([ids, fp_ids]), _quantize(np.concatenate([found, fp_boxes]))))
    return gt, pred


def _quantize(boxes: np.ndarray) -> np.ndarray:
    """Coordinates rounded to 1/8 px: exact in float32, and they compress."""
    return np.round(boxes * 8) / 8


def _predicted_ids(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """int64 [objects, frames]: the id the tracker gives each object on each frame."""
    ids = np.repeat(np.arange(1, s.objects + 1)[:, None], s.frames, axis=1)
    for _ in range(s.switches):
        a, b = rng.choice(s.objects, size=2, replace=False)
        k = int(rng.integers(1, s.frames))
        ids[[a, b], k:] = ids[[b, a], k:]
    for n in range(s.fragments):
        a, k = int(rng.integers(s.objects)), int(rng.integers(1, s.frames))
        ids[a, k:] = 50 + n
    return ids


def _gaps(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    hidden = np.zeros((s.objects, s.frames), dtype=np.bool_)
    for _ in range(s.gaps):
        a, k = int(rng.integers(s.objects)), int(rng.integers(1, s.frames))
        hidden[a, k:k + int(rng.integers(2, 9))] = True
    return hidden


def _false_positives(s: Scenario, rng: np.random.Generator, scale: np.ndarray):
    """(ids, boxes) of this frame's false positives: half of them with the ids of a few persistent
    false tracks (100, 101, ...), the others with ids drawn from 1000 on."""
    count = int(rng.poisson(s.false_positives))
    persistent = 100 + np.arange(count // 2)
    ids = np.concatenate([persistent, 1000 + rng.choice(10 * s.frames, size=count - count // 2, replace=False)])
    corner = rng.uniform(0, 0.8, size=(count, 2)) * scale
    size = rng.uniform(0.05, 0.2, size=(count, 2)) * scale
    return ids.astype(np.int64), np.concatenate([corner, corner + size], axis=1)


def ellipses(boxes: np.ndarray) -> np.ndarray:
    """bool [N, H, W] (MASK_SIZE): the ellipse inscribed in each box; empty outside the image."""
    yy, xx = np.mgrid[0:MASK_SIZE[0], 0:MASK_SIZE[1]] + 0.5
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rx, ry = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
    dx = (xx - cx[:, None, None]) / rx[:, None, None]
    dy = (yy - cy[:, None, None]) / ry[:, None, None]
    return dx**2 + dy**2 <= 1


def trackeval_results(gt: list, pred: list, by: str) -> dict[str, float]:
    """TrackEval's HOTA, CLEAR and Identity values (their summary fields) for one sequence."""
    from trackeval.datasets._base_dataset import _BaseDataset
    from trackeval.metrics import CLEAR, HOTA, Identity

    if by == "mask":
        similarity = [_BaseDataset._calculate_mask_ious(ellipses(g[1]), ellipses(p[1])) for g, p in zip(gt, pred)]
    else:
        similarity = [_BaseDataset._calculate_box_ious(g[1], p[1], box_format="x0y0x1y1") for g, p in zip(gt, pred)]
    gt_ids, n_gt_ids = _contiguous([g[0] for g in gt])
    pred_ids, n_pred_ids = _contiguous([p[0] for p in pred])
    data = {"num_timesteps": len(gt), "num_gt_ids": n_gt_ids, "num_tracker_ids": n_pred_ids,
            "num_gt_dets": sum(len(i) for i in gt_ids), "num_tracker_dets": sum(len(i) for i in pred_ids),
            "gt_ids": gt_ids, "tracker_ids": pred_ids, "similarity_scores": similarity}
    config = {"THRESHOLD": 0.5, "PRINT_CONFIG": False}
    out = {}
    for metric in (HOTA(), CLEAR(config), Identity(config)):
        res = metric.eval_sequence(data)
        for field in metric.summary_fields:
            if field in ("HOTA(0)", "LocA(0)", "HOTALocA(0)", "OWTA", "RHOTA"):
                continue
            out[field] = float(np.mean(res[field]))
    return out


def _contiguous(ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Ids renumbered 0..n-1 over the sequence, as TrackEval's datasets do before the metrics."""
    distinct, flat = np.unique(np.concatenate(ids), return_inverse=True)
    return np.split(flat, np.cumsum([len(i) for i in ids])[:-1]), len(distinct)


def pack(frames: list, by: str, prefix: str) -> dict[str, np.ndarray]:
    """Frames of (ids, boxes) as flat arrays: ids, offsets, boxes, and with masks packed bits."""
    arrays = {f"{prefix}/ids": np.concatenate([f[0] for f in frames]).astype(np.int32),
              f"{prefix}/offsets": np.concatenate([[0], np.cumsum([len(f[0]) for f in frames])]).astype(np.int32),
              f"{prefix}/boxes": np.concatenate([f[1] for f in frames]).astype(np.float32)}
    if by == "mask":
        arrays[f"{prefix}/masks"] = np.packbits(np.concatenate([ellipses(f[1]) for f in frames]).reshape(-1))
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from importlib.metadata import version

    arrays, meta = {}, {"trackeval": version("trackeval"), "mask_size": list(MASK_SIZE), "sequences": {}}
    for name, scenario in SCENARIOS.items():
        gt, pred = make_sequence(scenario)
        arrays.update(pack(gt, scenario.by, f"{name}/gt"))
        arrays.update(pack(pred, scenario.by, f"{name}/pred"))
        meta["sequences"][name] = {"scenario": asdict(scenario), "trackeval": trackeval_results(gt, pred, scenario.by)}
        print(name, {k: round(v, 4) for k, v in meta["sequences"][name]["trackeval"].items()})
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "tracking_metrics.npz", **arrays)
    (args.out / "tracking_metrics.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
