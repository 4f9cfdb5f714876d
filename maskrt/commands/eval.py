"""`maskrt eval`: box and mask AP of a model on a COCO-format dataset (pycocotools).

Writes two files, each atomically (a unique temporary name, renamed when complete; see
maskrt.safeio) and only after the evaluation succeeded; both are checked and claimed before
the model is loaded (a folder, an input, a place that cannot be written: one line):
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

from ..errors import MaskrtError, OutputError
from ..safeio import Output, refuse_overwriting


def metrics_path(out: Path) -> Path:
    """Where the metrics go for results file `out`: results.json -> results.metrics.json."""
    return out.with_name((out.stem if out.suffix == ".json" else out.name) + ".metrics.json")


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate args.model on args.coco / args.images; print tables and a summary; write the files."""
    from ..evaluation import image_files, load_coco

    out = Path(args.out)
    if out.is_dir():
        raise MaskrtError(f"--out must be a file name, not a directory: {out}")
    if args.max_images is not None and args.max_images < 1:
        raise MaskrtError("--max-images must be at least 1")
    coco_gt = load_coco(args.coco)
    img_ids = sorted(coco_gt.getImgIds())[: args.max_images]
    files = image_files(coco_gt, args.images, img_ids)  # fail on missing files before loading the model
    model = [Path(args.model)] if Path(args.model).exists() else []
    inputs = [Path(args.coco), *(path for _, path in files), *model]
    refuse_overwriting([out, metrics_path(out)], inputs, "--out", protected=[m for m in model if m.is_dir()])
    claims = []
    try:
        claims = [Output(out, "--out")]
        claims.append(Output(metrics_path(out), "metrics"))
        _evaluate(args, coco_gt, img_ids, claims)
    finally:
        for claim in claims:
            claim.close(False)  # no-op for those written
    return 0


def _evaluate(args, coco_gt, img_ids, claims) -> None:
    from ..api import load
    from ..evaluation import category_mapping, evaluate, predict_dataset, summary_line

    out = Path(args.out)
    seg = load(args.model, device=args.device, score_threshold=args.score_threshold,
               max_detections=100, min_size=args.min_size, max_size=args.max_size, progress=not args.quiet)
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
    _write_json(claims[0], results)
    _write_json(claims[1], record, indent=2)
    if not args.quiet:
        print(f"maskrt: wrote {out} and {metrics_path(out)}", file=sys.stderr)


def _write_json(out: Output, obj, indent: int | None = None) -> None:
    """Write JSON under a temporary name + rename, so a reader never sees a half-written file."""
    separators = None if indent else (",", ":")
    try:
        f = out.open("w")
        json.dump(obj, f, indent=indent, separators=separators)
        f.write("\n")
    except OSError as exc:
        out.close(keep=False)
        raise OutputError(f"cannot write {out.path}: {exc.strerror or exc}") from None
    out.close(keep=True)
