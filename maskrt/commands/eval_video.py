"""`maskrt eval --video CLIP --annotations CLIP.json [--track ...]`: a model on a video with ground truth.

The video is streamed through the model (offline, every frame, as `maskrt run` would) and scored
against the ground truth (a COCO document with one image per frame, image id = frame index, as
maskrt.data.generate_video writes beside its MP4): box and mask AP over the frames
(evaluation.video), and with --track the tracking metrics by box and by mask IoU (HOTA, DetA,
AssA, MOTA, IDF1, ID switches: evaluation.tracking). Writes, only when the evaluation succeeded:
--out (COCO results, image_id = frame index, with track_id and propagated when tracking) and
NAME.metrics.json ({"model", "video", "annotations", "frames", "score_threshold", "tracker",
"interval", "engine_frames", "mask_ap", "mask_ap50", "box_ap", "box_ap50", "tracking": {"box",
"mask"}}). Outputs are claimed before the model is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..errors import MaskrtError
from ..safeio import Output, refuse_overwriting
from .eval import _write_json, metrics_path
from .tracking import settings as tracking_settings


def run_video_eval(args: argparse.Namespace) -> int:
    """Evaluate one model on args.video against args.annotations (see the module docstring)."""
    if args.coco is not None or args.images is not None:
        raise MaskrtError("give either --video and --annotations, or --coco and --images")
    if args.annotations is None:
        raise MaskrtError("--video needs --annotations (the clip's ground truth JSON)")
    if len(args.model) > 1 or len(args.precision or []) > 1:
        raise MaskrtError("--video evaluates one model at a time")
    tracking = tracking_settings(args)
    ground_truth = _read_ground_truth(Path(args.annotations))
    if tracking is not None:
        from ..evaluation.tracking import require_track_ids

        require_track_ids(ground_truth)  # before the model runs over the whole clip
    from ..engine.stream import open_source

    source = open_source(str(args.video))
    claims: list[Output] = []
    try:
        if source.kind != "video":
            raise MaskrtError(f"--video must be a video file, got {args.video}")
        steps = [tracking.step(source, realtime=False)] if tracking is not None else []
        out = Path(args.out)
        targets = [out, metrics_path(out)]
        model = [Path(args.model[0])] if Path(args.model[0]).exists() else []
        refuse_overwriting(targets, [Path(args.video), Path(args.annotations), *model], "--out",
                           protected=[m for m in model if m.is_dir()])
        claims = [Output(targets[0], "--out"), Output(targets[1], "eval output")]
        records, seg = _stream(args, source, steps, tracking)
    except BaseException:
        source.close()
        for claim in claims:
            claim.close(False)
        raise
    try:
        _score_and_write(args, records, seg, ground_truth, tracking, steps, claims)
    finally:
        for claim in claims:
            claim.close(False)  # no-op for those written
    return 0


def _read_ground_truth(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaskrtError(f"--annotations {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MaskrtError(f"--annotations {path}: not a readable JSON document ({' '.join(str(exc).split())})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise MaskrtError(f"--annotations {path}: not a COCO instances document (no images list)")
    return document


def _stream(args, source, steps, tracking):
    """Every frame's record (the JSON line `maskrt run --json` writes) and the Segmenter."""
    from ..api import load_with
    from ..engine.stream import Pipeline, RecordsSink
    from ..progress import progress_bar
    from .options import load_options

    model_threshold, min_score = (args.score_threshold, None) if tracking is None else \
        tracking.score_thresholds(args.score_threshold)
    precision = args.precision[0] if args.precision else None
    seg = load_with(args.model[0], load_options(args, precision=precision, score_threshold=model_threshold))
    sink = RecordsSink()
    pipeline = Pipeline(seg, source, realtime=False, sinks=[sink], steps=steps, min_score=min_score)
    with progress_bar(total=source.expected_frames, unit="frame", disable=args.quiet, desc="eval") as bar:
        for _ in pipeline.run():
            bar.update(1)
    return sink.records, seg


def _score_and_write(args, records, seg, ground_truth, tracking, steps, claims) -> None:
    from ..evaluation.tracking import format_tracking, video_tracking
    from ..evaluation.video import video_ap

    scores = video_ap(records, ground_truth, classes=seg.classes)
    print(f"maskrt: box AP {scores['box_ap']:.4f} | box AP50 {scores['box_ap50']:.4f} | mask AP "
          f"{scores['mask_ap']:.4f} | mask AP50 {scores['mask_ap50']:.4f} ({scores['frames']} frames)")
    record = {"model": str(seg.source), "video": str(args.video), "annotations": str(args.annotations),
              "frames": scores["frames"], "score_threshold": args.score_threshold,
              **{k: scores[k] for k in ("mask_ap", "mask_ap50", "box_ap", "box_ap50")}}
    if tracking is not None:
        tracked = video_tracking(records, ground_truth)
        print(format_tracking(tracked))
        record.update(tracker=dataclasses.asdict(tracking.config), interval=tracking.interval,
                      engine_frames=steps[0].engine_frames, tracking={k: tracked[k] for k in ("box", "mask")})
    results = [{"image_id": r["frame"], **inst} for r in records for inst in r["instances"]]
    _write_json(claims[0], results)
    _write_json(claims[1], record, indent=2)
    if not args.quiet:
        print(f"maskrt: wrote {claims[0].path} and {claims[1].path}", file=sys.stderr)
