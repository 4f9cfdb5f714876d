"""`maskrt eval`: box and mask AP of a model, or of several side by side, on a COCO-format dataset.

Writes two files, each atomically (a unique temporary name, renamed when complete; see
maskrt.safeio) and only after the evaluation succeeded; both are checked and claimed before
the model is loaded (a folder, an input, a place that cannot be written: one line):
* `--out FILE` (default results.json): the COCO results list, loadable with COCO.loadRes:
  [{"image_id", "category_id", "score", "bbox": [x, y, w, h], "segmentation": RLE}, ...]
* FILE with the suffix .metrics.json (results.json -> results.metrics.json): {"model",
  "annotations", "images_dir", "num_images", "num_detections", "score_threshold",
  "categories", "bbox": {AP, AP50, ..., ARl}, "segm": {...}}, values in [0, 1] (-1: no ground truth).
* With several models (`--model A --model B`, or one model and `--precision fp32 --precision
  int8`): the k-th model's files are NAME-k.json and NAME-k.metrics.json (k >= 2), and
  NAME.compare.json holds the side-by-side table ({"models": [...], "differences": [each later
  model minus the first]}), which is also printed.
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
    """Evaluate each model of args.model (x args.precision) on args.coco / args.images; print
    tables, a summary per model and, for several, a side-by-side table; write the files."""
    from ..evaluation import image_files, load_coco

    out = Path(args.out)
    if out.is_dir():
        raise MaskrtError(f"--out must be a file name, not a directory: {out}")
    if args.max_images is not None and args.max_images < 1:
        raise MaskrtError("--max-images must be at least 1")
    specs = model_specs(args.model, args.precision)
    coco_gt = load_coco(args.coco)
    img_ids = sorted(coco_gt.getImgIds())[: args.max_images]
    files = image_files(coco_gt, args.images, img_ids)  # fail on missing files before loading the models
    targets = output_paths(out, len(specs))
    models = [Path(m) for m, _ in specs if Path(m).exists()]
    inputs = [Path(args.coco), *(path for _, path in files), *models]
    refuse_overwriting(targets, inputs, "--out", protected=[m for m in models if m.is_dir()])
    claims = []
    try:
        claims = [Output(path, "--out" if k == 0 else "eval output") for k, path in enumerate(targets)]
        _evaluate_all(args, specs, coco_gt, img_ids, claims)
    finally:
        for claim in claims:
            claim.close(False)  # no-op for those written
    return 0


def output_paths(out: Path, n_models: int) -> list[Path]:
    """Every file eval writes: per model its results and metrics, then (several) the comparison."""
    paths = [p for k in range(n_models) for p in (numbered(out, k), metrics_path(numbered(out, k)))]
    return paths + ([out.with_name(_stem(out) + ".compare.json")] if n_models > 1 else [])


def _evaluate_all(args, specs, coco_gt, img_ids, claims) -> None:
    segs = [_load(args, model, precision) for model, precision in specs]  # build / load all before evaluating
    runs = [_evaluate_one(args, seg, label, coco_gt, img_ids, len(segs) > 1) for seg, label in segs]
    for k, (results, record) in enumerate(runs):
        _write_json(claims[2 * k], results)
        _write_json(claims[2 * k + 1], record, indent=2)
    if len(runs) > 1:
        table, comparison = side_by_side([record for _, record in runs])
        print(table)
        _write_json(claims[-1], comparison, indent=2)
    if not args.quiet:
        written = [str(numbered(Path(args.out), k)) for k in range(len(runs))]
        print(f"maskrt: wrote {', '.join(written)} and their metrics", file=sys.stderr)


def model_specs(models: list[str], precisions: list[str] | None) -> list[tuple[str, str | None]]:
    """(model, precision) pairs: one precision per model, one for all models, or several for one model."""
    precisions = precisions or [None]
    if len(models) == len(precisions):
        return list(zip(models, precisions))
    if len(models) == 1:
        return [(models[0], p) for p in precisions]
    if len(precisions) == 1:
        return [(m, precisions[0]) for m in models]
    raise MaskrtError(f"{len(models)} --model and {len(precisions)} --precision: give one precision per model, "
                      "one for all, or several for one model")


def _load(args: argparse.Namespace, model: str, precision: str | None):
    from ..api import load_with
    from .options import load_options

    seg = load_with(model, load_options(args, precision=precision, max_detections=100))
    manifest = getattr(seg.backend, "manifest", None)
    precision = manifest.precision if manifest else (precision or "fp32")
    return seg, f"{model} ({seg.backend.name} {precision})"


def _evaluate_one(args, seg, label: str, coco_gt, img_ids: list[int], several: bool) -> tuple[list, dict]:
    from ..evaluation import category_mapping, evaluate, predict_dataset, summary_line

    if several:
        print(f"== {label} ==")
    label_map, rule = category_mapping(seg.classes, coco_gt)
    if not args.quiet:
        print(f"maskrt: {rule}", file=sys.stderr)
    results = predict_dataset(seg, coco_gt, args.images, img_ids=img_ids, progress=not args.quiet,
                              label_map=label_map)
    metrics = evaluate(coco_gt, results, img_ids=img_ids)
    print(f"maskrt: {summary_line(metrics)} ({len(img_ids)} images, {len(results)} detections)")
    record = {"model": label if several else str(seg.source), "annotations": str(args.coco),
              "images_dir": str(args.images), "num_images": len(img_ids), "num_detections": len(results),
              "score_threshold": args.score_threshold, "categories": rule, **metrics}
    return results, record


COLUMNS = (("box AP", "bbox", "AP"), ("box AP50", "bbox", "AP50"), ("mask AP", "segm", "AP"),
           ("mask AP50", "segm", "AP50"))


def side_by_side(records: list[dict]) -> tuple[str, dict]:
    """The comparison table (text) and its JSON: each model's AP columns, then each later model
    minus the first (absolute AP difference)."""
    width = max(len(r["model"]) for r in records) + 2
    header = "".join(f"{name:>11}" for name, _, _ in COLUMNS)
    lines = [f"maskrt: side by side on {records[0]['num_images']} images:", f"  {'':<{width}}{header}"]
    rows = []
    for r in records:
        values = {name: r[kind][stat] for name, kind, stat in COLUMNS}
        rows.append({"model": r["model"], **values})
        lines.append(f"  {r['model']:<{width}}" + "".join(f"{v:>11.4f}" for v in values.values()))
    diffs = []
    for row in rows[1:]:
        diff = {name: row[name] - rows[0][name] for name, _, _ in COLUMNS}
        diffs.append({"model": row["model"], "minus": rows[0]["model"], **diff})
        lines.append(f"  {'difference vs the first':<{width}}" + "".join(f"{v:>+11.4f}" for v in diff.values()))
    return "\n".join(lines), {"models": rows, "differences": diffs}


def numbered(out: Path, k: int) -> Path:
    """Results file of the k-th model (0-based): `out` itself, then NAME-2.json, NAME-3.json, ..."""
    return out if k == 0 else out.with_name(f"{_stem(out)}-{k + 1}{out.suffix or '.json'}")


def _stem(out: Path) -> str:
    return out.stem if out.suffix == ".json" else out.name


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
