"""`maskrt batch SOURCE... --model MODEL --out-dir DIR [--ray [ADDRESS]]`: the CLI face of
maskrt.distributed (see its batch.py). Exit codes: 0 every input done or skipped; 1 some input
failed or had problems (the others are written); 2 user error; 130 interrupted."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..distributed import BatchOptions, run_batch
from .options import load_options


def bare_ray(ray: str | None, sources: list[str]) -> tuple[str | None, list[str]]:
    """`--ray clip.mp4 ...` makes argparse take the first SOURCE as the address: an "address"
    that is an existing path (and not `auto` or HOST:PORT) is a SOURCE after a bare --ray."""
    if ray and ray != "auto" and ":" not in ray and Path(ray).exists():
        return "", [ray, *sources]
    return ray, sources


def run(args: argparse.Namespace) -> int:
    ray, sources = bare_ray(args.ray, args.sources)
    opts = BatchOptions(sources=sources, model=args.model, out_dir=args.out_dir, ray=ray,
                        workers=args.workers, cpus_per_worker=args.cpus_per_worker, load=load_options(args),
                        video=args.video, coco=args.coco,
                        images_per_task=args.images_per_task, max_attempts=args.max_attempts, quiet=args.quiet,
                        summary_path=args.summary)
    return run_batch(opts).exit_code
