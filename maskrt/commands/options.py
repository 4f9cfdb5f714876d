"""The command line's load options: one mapping from parsed arguments to `LoadOptions`.

run, batch, eval and serve name the same options the same way (--backend, --device, --precision,
--score-threshold, --min-size, --max-size, --threads, --batch, --proposals, --calibration[-size],
--config, --quiet); a command without one of them gets LoadOptions' default."""

from __future__ import annotations

import argparse

from ..options import LoadOptions, Number

# LoadOptions field -> the argparse dest that sets it
_ARGS = {"device": "device", "backend": "backend", "precision": "precision", "score_threshold": "score_threshold",
         "min_size": "min_size", "max_size": "max_size", "num_threads": "threads", "batch_size": "batch",
         "proposals": "proposals", "calibration": "calibration", "calibration_size": "calibration_size",
         "config": "config"}


def add_proposals(parser: argparse.ArgumentParser, what: str) -> None:
    """--proposals N (LoadOptions.proposals)."""
    parser.add_argument("--proposals", type=PROPOSALS, metavar="N", help=what)


def load_options(args: argparse.Namespace, **overrides) -> LoadOptions:
    """LoadOptions from the command's arguments (unknown to the command: the default), then
    `overrides`; checked (one MaskrtError line for a bad value)."""
    given = {field: getattr(args, dest) for field, dest in _ARGS.items() if getattr(args, dest, None) is not None}
    if hasattr(args, "quiet"):
        given["progress"] = not args.quiet
    return LoadOptions(**{**given, **overrides}).checked()


# argparse types of the load options every command shares (ranges: maskrt.options.Number)
SIZE = Number(int, 1, 16384)  # --min-size, --max-size: pixels
THREADS = Number(int, 1, 1024)  # --threads
BATCH = Number(int, 1, 1024)  # --batch: images per inference call
COUNT = Number(int, 1)  # a positive count (--max-frames, --calibration-size, ...)
SCORE = Number(float, 0.0, 1.0)  # --score-threshold
PROPOSALS = Number(int, 1, 100_000)  # --proposals: RPN proposals per image
