"""`maskrt eval`: box and mask AP of a model on a COCO-format dataset (pycocotools).

Writes two files, each atomically (NAME.partial, renamed when complete) and only after the
evaluation succeeded:
* `--out FILE` (default results.json): the COCO results list, loadable with COCO.loadRes:
  [{"image_id", "category_id", "score", "bbox": [x, y, w, h], "segmentation": RLE}, ...]
* FILE with the suffix .metrics.json (results.json -> results.metrics.json): {"model",
  "annotations", "images_dir", "num_images", "num_detections", "score_threshold",
  "categories", "bbox": {AP, AP50, ..., ARl}, "segm": {...}}, values in [0, 1] (-1: no ground truth).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engine.outputs import AtomicFile
from ..errors import MaskrtError


def metrics_path(out: Path) -> Path:
    """Where the metrics go for results file `out`: results.json -> results.metrics.json."""
    return out.with_name((out.stem if out.suffix == ".json" else out.name) + ".metrics.json")


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate args.model on args.coco / args.images; print tables and a summary; write the files."""
    from ..api import load
    from ..evaluation import category_mapping, evaluate, image_files, load_coco, predict_dataset, summary_line

    out = Path(args.out)
    if out.is_dir():
        raise MaskrtError(f"--out must be a file name, not a directory: {out}")
    if args.max_images is not None and args.max_images < 1:
        raise MaskrtError("--max-images must be at least 1")
    coco_gt = load_coco(args.coco)
    img_ids = sorted(coco_gt.getImgIds())[: args.max_images]
    image_files(coco_gt, args.images, img_ids)  # fail on missing files before loading the model
    seg = load(args.model, device=args.device, score_threshold=args.score_threshold,
               max_detections=100, min_size=args.min_size, max_size=args.max_size)
    label_map, rule = category_mapping(seg.classes, coco_gt)
    if not args.quiet:
        print(f"maskrt: {rule}", file=sys.stderr)
    results = predict_dataset(seg, coco_gt, args.images, img_ids=img_ids, progress=not args.quiet,
                              label_map=label_map)
    metrics = evaluate(coco_gt, results, img_ids=img_ids)
    summary = summary_line(metrics)
    print(f"maskrt: {summary} ({len(img_ids)} images, {len(results)} detections)")
    record = {"model": str(args.model), "annotations": str(args.coco), "images_dir": str(args.images),
              "num_images": len(img_ids), "num_detections": len(results),
              "score_threshold": args.score_threshold, "categories": rule, **metrics}
    _write_json(out, results)
    _write_json(metrics_path(out), record, indent=2)
    if not args.quiet:
        print(f"maskrt: wrote {out} and {metrics_path(out)}", file=sys.stderr)
    return 0


def _write_json(path: Path, obj, indent: int | None = None) -> None:
    """Write JSON via NAME.partial + rename, so a reader never sees a half-written file."""
    separators = None if indent else (",", ":")
    with AtomicFile(path, "w") as f:
        json.dump(obj, f, indent=indent, separators=separators)
        f.write("\n")
