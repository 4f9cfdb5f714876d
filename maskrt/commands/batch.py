"""`maskrt batch SOURCE... --model MODEL --out-dir DIR [--ray [ADDRESS]]`: the CLI face of
maskrt.distributed (see its batch.py). Exit codes: 0 every input done or skipped; 1 some input
failed or had problems (the others are written); 2 user error; 130 interrupted."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..distributed import BatchOptions, run_batch


def run(args: argparse.Namespace) -> int:
    if args.ray and args.ray != "auto" and ":" not in args.ray and Path(args.ray).exists():
        args.sources, args.ray = [args.ray, *args.sources], ""  # `--ray SOURCE ...`: a bare --ray before a path
    opts = BatchOptions(sources=args.sources, model=args.model, out_dir=args.out_dir, ray=args.ray,
                        workers=args.workers, cpus_per_worker=args.cpus_per_worker, threads=args.threads,
                        score_threshold=args.score_threshold, batch=args.batch, min_size=args.min_size,
                        max_size=args.max_size, backend=args.backend, video=args.video, coco=args.coco,
                        images_per_task=args.images_per_task, max_attempts=args.max_attempts, quiet=args.quiet,
                        summary_path=args.summary)
    return run_batch(opts).exit_code
