"""`maskrt` command line: run | info. User mistakes print one line and exit with code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import MaskrtError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="segment images (a file, a folder or a glob)",
                       description="Segment SOURCE with MODEL; write JSON lines and/or annotated images.")
    p.add_argument("source", help="an image, a folder of images, or a quoted glob such as 'imgs/*.jpg'")
    p.add_argument("--model", required=True, help="checkpoint (.pth/.pt/.safetensors) or torchvision:NAME")
    p.add_argument("--json", type=Path, help="write one JSON object per image to this .jsonl file")
    p.add_argument("--out", type=Path, help="folder for annotated PNG images")
    p.add_argument("--score-threshold", type=float, default=0.5, help="keep detections above this (default 0.5)")
    p.add_argument("--min-size", type=int, help="resize shorter side to this (default: the model's, 800)")
    p.add_argument("--max-size", type=int, help="cap on the longer side (default: the model's, 1333)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a checkpoint", description="Print what maskrt infers from MODEL.")
    p.add_argument("model", help="checkpoint or torchvision:NAME")
    p.set_defaults(func=_cmd_info)


def _cmd_run(args: argparse.Namespace) -> int:
    from .commands.run import run_images

    if args.json is None and args.out is None:
        raise MaskrtError("nothing to write: give --json FILE and/or --out DIR")
    return run_images(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from .model import load_model

    loaded = load_model(args.model)
    cfg = loaded.config
    print(f"model:        {loaded.source}")
    print(f"architecture: {cfg.name} ({cfg.variant})")
    print(f"backbone:     ResNet-{cfg.depth}, FPN {cfg.fpn_channels} channels")
    print(f"input size:   min {loaded.model.policy.min_size}, max {loaded.model.policy.max_size}")
    print(f"classes ({cfg.num_classes - 1} + background): {', '.join(loaded.classes[1:])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskrt", description="Mask R-CNN inference engine.")
    parser.add_argument("--version", action="version", version=f"maskrt {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_info):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MaskrtError as exc:
        print(f"maskrt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("maskrt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
