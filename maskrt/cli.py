"""`maskrt` command line: build | run | batch | eval | info | demo | serve | export. User mistakes print one
line and exit with code 2."""

from __future__ import annotations

import argparse
import errno
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .commands.options import BATCH, COUNT, SCORE, SIZE, THREADS, add_proposals
from .commands.tracking import add_arguments as add_tracking_arguments
from .errors import MaskrtError
from .options import BACKENDS, ENGINE_BACKENDS, PRECISIONS, TARGETS, Number

PROPOSALS_HELP = ("RPN proposals per image sent through the box head (post-NMS top-N; pre-NMS per level scaled "
                  "with it; default: the engine's or checkpoint's own, 1000 unless its metadata names one)")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
RAY_SIGTERM_EXIT = 15  # ray.init installs a SIGTERM handler that calls sys.exit(15) until it returns
# OS errors that are the machine's state, not a bug: reported in one line (a safety net: the
# writers name the file themselves where they can).
_SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes (an unknown flag, a missing argument, a value out of its range:
    options.Number) are the CLI's one error line, exit code 2, naming the command's --help."""

    def error(self, message: str):
        message = re.sub(r"^argument (\S+): must be", r"\1 must be", message)
        raise MaskrtError(f"{message} (see {self.prog} --help)")


def _add_precision(p, default: str | None, what: str) -> None:
    """--precision, --calibration, --calibration-size (int8 CPU engines: maskrt.builders.calibration)."""
    p.add_argument("--precision", choices=PRECISIONS, default=default, help=what)
    p.add_argument("--calibration", metavar="DIR_OR_GLOB",
                   help="int8: calibration images, a folder or a quoted glob, or 'synthetic' (maskrt's shapes "
                        "scenes; the default for the bundled model only)")
    p.add_argument("--calibration-size", type=COUNT, metavar="N",
                   help="int8: number of calibration images (default 128, evenly spaced over the folder)")


def _add_config(p) -> None:
    """--config: a detectron2 checkpoint's YAML config (maskrt.model.detectron2.config)."""
    p.add_argument("--config", metavar="MODEL.yaml",
                   help="detectron2 checkpoints: the model's detectron2 config (its _BASE_ chain is followed); "
                        "default: the model zoo's Mask R-CNN FPN settings (see maskrt info)")


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run", help="segment a video, camera, URL or images",
        description="Segment SOURCE with MODEL; write an annotated video (or PNGs), JSON lines and stats. "
                    "Exit codes: 0 done, 1 some input unreadable (outputs written), 2 user error, 130 interrupted.")
    p.add_argument("source", help="a video file, an image, a folder of images, a quoted glob such as 'imgs/*.jpg', "
                                  "a webcam index (0) or an rtsp/http URL")
    p.add_argument("--model", required=True,
                   help="engine directory (NAME.maskrt), checkpoint (.pth/.pt/.safetensors, detectron2 .pkl/.pth; the "
                        "CPU engine is built and cached) or torchvision:NAME")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="inference backend (default auto: the engine's, or OpenVINO for checkpoints on the CPU)")
    p.add_argument("--threads", type=THREADS, help="inference threads (default: all cores)")
    p.add_argument("--out", type=Path, help="annotated output: an .mp4 file (H.264) for videos, cameras and URLs; "
                                            "a folder of PNG images for still images")
    p.add_argument("--json", type=Path, help="write one JSON object per frame to this .jsonl file")
    p.add_argument("--coco", type=Path, help="write COCO results JSON (image_id = frame index) to this file")
    p.add_argument("--stats", type=Path, help="write per-stage latency percentiles and counters as JSON")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="keep only the newest frame when inference falls behind, counting drops "
                        "(default: on for cameras and URLs, off for files)")
    p.add_argument("--score-threshold", type=SCORE, default=0.5, help="keep detections above this (default 0.5)")
    p.add_argument("--batch", type=BATCH, default=1, help="frames per inference call, offline mode (default 1)")
    p.add_argument("--show-fps", action="store_true", help="draw the frame rate on the annotated output")
    p.add_argument("--max-frames", type=COUNT, help="stop after reading this many frames")
    p.add_argument("--min-size", type=SIZE, help="resize shorter side to this (default: the model's, 800)")
    p.add_argument("--max-size", type=SIZE, help="cap on the longer side (default: the model's, 1333)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_proposals(p, PROPOSALS_HELP)
    _add_precision(p, None, "for a checkpoint: build (once, cached) and run the CPU engine of this precision "
                            "(default fp32)")
    _add_config(p)
    add_tracking_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=_cmd_run)


def _add_batch(sub) -> None:
    p = sub.add_parser(
        "batch", help="segment many videos and image folders into a folder, locally or on a Ray cluster",
        description="Segment every SOURCE into --out-dir: NAME.jsonl (and NAME.mp4 for videos, NAME.coco.json "
                    "with --coco) plus NAME.done.json once complete, NAME = <stem>-<hash of the input path>. "
                    "Running it again skips finished inputs and redoes the rest. Exit codes: 0 all done, "
                    "1 some input failed (the others are written), 2 user error, 130 interrupted.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="video files, image files, folders of images, quoted globs, or .txt files listing them")
    p.add_argument("--model", required=True, help="engine directory (NAME.maskrt) or checkpoint (the CPU engine "
                                                  "is built and cached)")
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the outputs and completion records")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray (or $RAY_ADDRESS); with ADDRESS (auto, HOST:PORT, "
                        "ray://HOST:10001), that cluster. Without --ray: in this process")
    p.add_argument("--workers", type=Number(int, 1, 4096), help="Ray actors, one engine each (default: cluster CPUs / "
                                               "--cpus-per-worker)")
    p.add_argument("--cpus-per-worker", type=Number(float, 0, 1024, above=True), default=1.0,
                   help="CPUs Ray reserves per worker (default 1)")
    p.add_argument("--threads", type=THREADS, help="inference threads per worker (default: --cpus-per-worker "
                                               "under Ray, all cores locally)")
    p.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                   help="write the annotated MP4 of each video (default on)")
    p.add_argument("--coco", action="store_true", help="also write COCO results JSON per input")
    p.add_argument("--score-threshold", type=SCORE, default=0.5, help="keep detections above this (default 0.5)")
    p.add_argument("--batch", type=BATCH, default=1, help="frames per inference call (default 1)")
    p.add_argument("--images-per-task", type=COUNT, default=64, help="images per task of an image folder (default 64)")
    p.add_argument("--max-attempts", type=Number(int, 1, 100), default=3,
                   help="attempts at one task before its input is reported failed (default 3)")
    p.add_argument("--min-size", type=SIZE, help="checkpoints: shorter side of the engine's input (default 800)")
    p.add_argument("--max-size", type=SIZE, help="checkpoints: cap on the longer side (default 1333)")
    p.add_argument("--backend", choices=ENGINE_BACKENDS, default="auto",
                   help="inference backend (default: the engine's)")
    add_proposals(p, PROPOSALS_HELP)
    p.add_argument("--summary", type=Path, help="also write the summary as JSON to this file")
    _add_config(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stderr")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from .commands.batch import run

    return run(args)


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe an engine or a checkpoint",
                       description="Print an engine's manifest, or what maskrt infers from a checkpoint.")
    p.add_argument("model", help="engine directory (NAME.maskrt), checkpoint, or torchvision:NAME")
    _add_config(p)
    p.set_defaults(func=_cmd_info)


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="compile a checkpoint into an engine",
                       description="Export WEIGHTS to ONNX and build an engine directory OUT.maskrt.")
    p.add_argument("weights", help="checkpoint (.pth/.pt/.safetensors, a detectron2 model-zoo .pkl or "
                                   "DetectionCheckpointer .pth) or torchvision:NAME")
    p.add_argument("-o", "--output", required=True, type=Path, help="engine directory to write (NAME.maskrt)")
    p.add_argument("--target", choices=TARGETS, default="cpu", help="cpu (OpenVINO) or tensorrt")
    _add_precision(p, "fp32", "fp32; fp16 (TensorRT: an fp16 ONNX; CPU: fp16 weights, bf16 compute where "
                              "supported); int8 (CPU: NNCF post-training quantization on --calibration images)")
    p.add_argument("--min-size", type=SIZE, help="resize shorter side to this (default: the checkpoint's, 800)")
    p.add_argument("--max-size", type=SIZE, help="cap on the longer side (default: the checkpoint's, 1333)")
    add_proposals(p, PROPOSALS_HELP + "; recorded in the manifest as the engine's default")
    p.add_argument("--onnx-only", action="store_true", help="stop after writing and checking the ONNX")
    _add_config(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_build)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a built engine in another runtime's format",
                       description="Write a TensorRT engine (maskrt build --target tensorrt) as a Triton Inference "
                                   "Server model repository: configs, plans, a client example.")
    p.add_argument("engine", type=Path, help="engine directory (NAME.maskrt) holding TensorRT plans")
    p.add_argument("--triton-repo", type=Path, required=True, metavar="DIR", help="model repository to write")
    p.add_argument("--instances", type=COUNT, default=1, help="model instances on the GPU (default 1)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .commands.export import run

    return run(args)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="segment a generated shapes video with the bundled model",
                       description="Generate a synthetic video, build the CPU engine from the bundled model, "
                                   "segment the video and write runs/demo/out.mp4 and out.jsonl.")
    p.add_argument("--model", default=None, help="model to use (default: the bundled shapes model)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--frames", type=Number(int, 1, 100_000), default=90,
                   help="number of frames to generate (default 90)")
    p.add_argument("--seed", type=Number(int, 0, 2**32 - 1), default=0, help="video generator seed (default 0)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="CPU engine precision (default: int8 for the bundled model, fp32 for others)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .commands.demo import DEFAULT_MODEL, run_demo

    run_demo(args.model or DEFAULT_MODEL, args.out_dir, num_frames=args.frames, seed=args.seed,
             precision=args.precision)
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from .builders import build_engine

    build_engine(args.weights, args.output, target=args.target, precision=args.precision,
                 min_size=args.min_size, max_size=args.max_size, onnx_only=args.onnx_only,
                 progress=not args.quiet, calibration=args.calibration, calibration_size=args.calibration_size,
                 proposals=args.proposals, config=args.config)
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="box and mask AP on a COCO dataset or a video; tracking metrics",
                       description="Run MODEL on every image of a COCO annotations file and print box and mask AP "
                                   "(the standard 12-number pycocotools tables); or, with --video and --annotations, "
                                   "on every frame of a clip (AP over the frames; with --track also HOTA, DetA, "
                                   "AssA, MOTA, IDF1 and ID switches by box and by mask IoU). Writes the COCO "
                                   "results to --out and the metrics to the same name with .metrics.json "
                                   "(results.json -> results.metrics.json), both only when the evaluation succeeded.")
    p.add_argument("--model", required=True, action="append",
                   help="engine directory, checkpoint (.pth/.pt/.safetensors) or torchvision:NAME; give it twice "
                        "(or --precision twice) to put two engines side by side on the same images")
    p.add_argument("--precision", action="append", choices=PRECISIONS,
                   help="for a checkpoint: the CPU engine's precision (default fp32); one per --model, or "
                        "several for one model (--precision fp32 --precision int8)")
    p.add_argument("--calibration", metavar="DIR_OR_GLOB", help="int8: calibration images (see maskrt build)")
    p.add_argument("--calibration-size", type=COUNT, metavar="N", help="int8: number of calibration images")
    p.add_argument("--coco", type=Path, help="COCO instances annotations JSON")
    p.add_argument("--images", type=Path, help="folder holding the annotations' file_name paths")
    p.add_argument("--video", type=Path, help="instead of --coco/--images: a video file, scored frame by frame "
                                              "against --annotations (AP; with --track also HOTA, MOTA, IDF1)")
    p.add_argument("--annotations", type=Path,
                   help="with --video: its ground truth, a COCO document with one image per frame (image id = "
                        "frame index) and track_id on each annotation (as maskrt.data.generate_video writes)")
    p.add_argument("--out", type=Path, default=Path("results.json"),
                   help="COCO results JSON to write (default results.json; metrics go to NAME.metrics.json)")
    p.add_argument("--score-threshold", type=SCORE, default=0.05,
                   help="keep detections above this (default 0.05, as usual for AP)")
    p.add_argument("--min-size", type=SIZE, help="resize shorter side to this (default: the model's, 800)")
    p.add_argument("--max-size", type=SIZE, help="cap on the longer side (default: the model's, 1333)")
    p.add_argument("--max-images", type=COUNT, help="evaluate only the first N images (by image id)")
    add_proposals(p, PROPOSALS_HELP)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    _add_config(p)
    add_tracking_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or notes on stderr")
    p.set_defaults(func=_cmd_eval)


def _cmd_run(args: argparse.Namespace) -> int:
    from .commands.run import run

    if args.json is None and args.out is None and args.coco is None and args.stats is None:
        raise MaskrtError("nothing to write: give --out, --json, --coco and/or --stats")
    return run(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.video is not None:
        from .commands.eval_video import run_video_eval

        return run_video_eval(args)
    if args.coco is None or args.images is None:
        raise MaskrtError("give --coco and --images (a COCO dataset), or --video and --annotations (a clip)")
    video_only = [f"--{n}" for n in ("annotations", "track", "tracker", "match", "interval") if getattr(args, n)]
    if video_only:
        raise MaskrtError(f"{', '.join(video_only)} apply to --video")
    from .commands.eval import run_eval

    return run_eval(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from .artifact import is_engine_dir
    from .model import load_model

    from .commands.info import print_checkpoint_info, print_engine_info

    if is_engine_dir(args.model):
        if args.config is not None:
            raise MaskrtError(f"--config applies to detectron2 checkpoints; {args.model} is an engine")
        return print_engine_info(args.model)
    return print_checkpoint_info(load_model(args.model, config=args.config))


def _add_serve(sub) -> None:
    from .commands.serve import add_parser  # the command itself imports Ray only when it runs

    add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maskrt", description="Mask R-CNN inference engine.")
    parser.add_argument("--version", action="version", version=f"maskrt {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_build, _add_run, _add_batch, _add_eval, _add_info, _add_demo, _add_serve, _add_export):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. SIGTERM is handled like Ctrl-C (maskrt.signals) so that temporary files
    and half-built engines are removed; both exit with 130 and one line, also while the heavy
    modules (torch, OpenVINO) are still being imported."""
    from .signals import cli_handlers

    try:
        with cli_handlers():
            args = build_parser().parse_args(argv)
            func: Callable[[argparse.Namespace], int] = args.func
            return func(args)
    except MaskrtError as exc:
        print(f"maskrt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return _interrupted()
    except SystemExit as exc:
        if exc.code != RAY_SIGTERM_EXIT:
            raise
        return _interrupted()  # SIGTERM caught by Ray's own handler (ray.init's)
    except OSError as exc:
        if exc.errno not in _SYSTEM_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"maskrt: error: {where}{exc.strerror}", file=sys.stderr)
        return EXIT_USAGE


def _interrupted() -> int:
    print("maskrt: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # between statements outside main(): still one line
        print("maskrt: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
