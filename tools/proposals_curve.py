#!/usr/bin/env python
"""The bundled model's AP against its RPN proposal count N (maskrt.load(..., proposals=N)).

Every N runs on the same validation images (maskrt.data.generate_coco_dataset(DIR, IMAGES,
seed=424242): the documented validation set, or its first IMAGES images) through the CPU engine
of each precision, at score threshold 0.05 as for any AP; box and mask AP by
maskrt.evaluation.coco_eval (pycocotools). The dense stage does not depend on N, so it runs
once per image and its outputs are reused for every N (the glue and the heads run per N). Also
recorded: the median time of one image's glue + heads per N (machine shared: indicative).

    .venv/bin/python tools/proposals_curve.py --data runs/val500 --images 500 \
        --out benchmarks/results/KIND/proposals_curve.json

The smallest N whose mask AP (and that of every larger N) is at most TOLERANCE (0.005) below
N = 1000's on the fp32 engine and the int8 one is the bundled model's default (its metadata "proposals", maskrt/assets/README.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import maskrt  # noqa: E402
from maskrt.builders.calibration import bundled_checkpoint  # noqa: E402
from maskrt.machine import describe  # noqa: E402

VAL_SEED = 424_242
COUNTS = (1000, 300, 150, 100, 75, 50)
TOLERANCE = 0.005


class ReusedDense:
    """The dense stage, run again only when its input changes (outputs copied: the engine's own
    buffers are overwritten by its next call)."""

    def __init__(self, dense):
        self.dense, self.last, self.outputs = dense, None, None

    def __call__(self, batch):
        if self.last is None or self.last.shape != batch.shape or not bool((self.last == batch).all()):
            self.last, self.outputs = batch.clone(), tuple(t.clone() for t in self.dense(batch))
        return self.outputs


def curve(precision: str, coco, images_dir: Path, counts) -> dict:
    import numpy as np

    from maskrt.engine.images import read_image
    from maskrt.engine.outputs import instances_json
    from maskrt.evaluation.coco_eval import evaluate

    seg = maskrt.load(bundled_checkpoint(), score_threshold=0.05, precision=precision, progress=False)
    detector = seg.backend.detector
    detector.dense = ReusedDense(detector.dense)
    results = {n: [] for n in counts}
    seconds = {n: [] for n in counts}
    from maskrt.progress import progress_bar

    for image_id in progress_bar(sorted(coco.getImgIds()), desc=f"{precision} engine", unit="img"):
        image = read_image(images_dir / coco.imgs[image_id]["file_name"])
        for n in counts:
            seg.backend.detector.set_proposals(n)
            start = time.perf_counter()
            dets = seg(image)
            seconds[n].append(time.perf_counter() - start)
            results[n] += [{"image_id": image_id, **inst} for inst in instances_json(dets)[:100]]
    rows = []
    for n in counts:
        metrics = evaluate(coco, results[n], verbose=False)
        rows.append({"proposals": n, "box_ap": metrics["bbox"]["AP"], "mask_ap": metrics["segm"]["AP"],
                     "mask_ap50": metrics["segm"]["AP50"],
                     "median_ms_after_dense": round(1e3 * float(np.median(seconds[n][1:] or seconds[n])), 2)})
    reference = next(r for r in rows if r["proposals"] == max(counts))
    for r in rows:
        r["mask_ap_change"] = r["mask_ap"] - reference["mask_ap"]
        r["box_ap_change"] = r["box_ap"] - reference["box_ap"]
    return {"precision": precision, "rows": rows, "smallest_within_tolerance": smallest_within(rows)}


def smallest_within(rows: list[dict]) -> int:
    """The smallest N such that no N' >= N loses more than TOLERANCE mask AP against N = 1000
    (a gain is no loss)."""
    best = max(r["proposals"] for r in rows)
    for r in sorted(rows, key=lambda r: -r["proposals"]):
        if r["mask_ap_change"] < -TOLERANCE:
            break
        best = r["proposals"]
    return best


def markdown(report: dict) -> str:
    lines = [f"# Bundled model: AP against RPN proposals per image\n",
             f"Machine: {report['machine']}; load average at start {report['load_average']}.\n",
             f"Validation set: {report['images']} images of maskrt.data seed {VAL_SEED} (the first {report['images']} "
             f"of the documented 500). Tolerance: mask AP at most {TOLERANCE} below N = 1000 (for that N and every larger one).\n",
             "`tools/proposals_curve.py`; the ms column is one image's glue + box and mask stages after the "
             "dense stage (median, shared machine: indicative only).\n"]
    for c in report["curves"]:
        lines += [f"\n## {c['precision']} engine (smallest N within tolerance: {c['smallest_within_tolerance']})\n",
                  "| N | box AP | mask AP | mask AP50 | mask AP change | box AP change | ms after dense |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['proposals']} | {r['box_ap']:.4f} | {r['mask_ap']:.4f} | {r['mask_ap50']:.4f} | "
                  f"{r['mask_ap_change']:+.4f} | {r['box_ap_change']:+.4f} | {r['median_ms_after_dense']} |"
                  for r in c["rows"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    import os

    from maskrt.data import generate_coco_dataset
    from maskrt.evaluation.coco_eval import load_coco

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("runs/val500"))
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--precision", action="append", choices=("fp32", "int8"))
    p.add_argument("--counts", type=lambda t: tuple(int(x) for x in t.split(",")), default=COUNTS,
                   help=f"proposal counts, comma-separated, the largest is the reference (default {COUNTS})")
    p.add_argument("--out", type=Path, default=Path(f"benchmarks/results/{describe(False).kind}/proposals_curve.json"))
    args = p.parse_args()
    if not (args.data / "annotations.json").exists():
        generate_coco_dataset(args.data, 500, seed=VAL_SEED)
    coco = load_coco(args.data / "annotations.json")
    ids = sorted(coco.getImgIds())[: args.images]
    coco.imgs = {i: coco.imgs[i] for i in ids}
    coco.dataset["images"] = [coco.imgs[i] for i in ids]
    coco.dataset["annotations"] = [a for a in coco.dataset["annotations"] if a["image_id"] in coco.imgs]
    coco.createIndex()
    report = {"machine": describe().summary(), "load_average": [round(x, 2) for x in os.getloadavg()],
              "images": len(ids), "seed": VAL_SEED, "tolerance": TOLERANCE,
              "curves": [curve(pr, coco, args.data / "images", args.counts) for pr in args.precision or ("fp32", "int8")]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
