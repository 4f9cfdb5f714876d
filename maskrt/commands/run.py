"""`maskrt run` on still images: JSON lines and annotated PNGs."""

from __future__ import annotations

import argparse
import contextlib
import sys

from tqdm import tqdm

from ..api import load
from ..engine.outputs import AtomicFile, JsonLinesWriter, frame_record
from ..engine.render import draw_detections
from ..engine.images import read_image
from ..engine.sources import image_paths
from ..errors import InputError


def run_images(args: argparse.Namespace) -> int:
    """Segment every image of args.source; returns the exit code (1 if some images failed)."""
    paths = image_paths(args.source)
    seg = load(args.model, device=args.device, score_threshold=args.score_threshold,
               min_size=args.min_size, max_size=args.max_size)
    failures = 0
    writer = JsonLinesWriter(args.json) if args.json else None
    with writer if writer else contextlib.nullcontext():
        for index, path in enumerate(tqdm(paths, unit="img", disable=args.quiet or len(paths) < 2)):
            try:
                image = read_image(path)
            except InputError as exc:
                print(f"maskrt: skipped: {exc}", file=sys.stderr)
                failures += 1
                continue
            dets = seg(image)
            if writer:
                writer.write(frame_record(index, None, dets, file=str(path)))
            if args.out:
                _write_png(args.out / f"{path.stem}.png", draw_detections(image, dets, seg.classes))
    if not args.quiet:
        done = len(paths) - failures
        print(f"maskrt: {done} image(s) segmented" + (f", {failures} skipped" if failures else ""), file=sys.stderr)
    return 1 if failures else 0


def _write_png(path, image) -> None:
    from PIL import Image

    with AtomicFile(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
