"""The command line's load options: one mapping from parsed arguments to `LoadOptions`.

run, batch, eval and serve name the same options the same way (--backend, --device, --precision,
--score-threshold, --min-size, --max-size, --threads, --batch, --proposals, --calibration[-size], --quiet);
a command without one of them gets LoadOptions' default."""

from __future__ import annotations

import argparse

from ..errors import MaskrtError
from ..options import LoadOptions

# LoadOptions field -> the argparse dest that sets it
_ARGS = {"device": "device", "backend": "backend", "precision": "precision", "score_threshold": "score_threshold",
         "min_size": "min_size", "max_size": "max_size", "num_threads": "threads", "batch_size": "batch",
         "proposals": "proposals",
         "calibration": "calibration", "calibration_size": "calibration_size"}


def positive_count(text: str) -> int:
    """argparse type of an option that takes a positive integer (--proposals): anything else is
    one MaskrtError line (argparse's own errors print the usage too)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise MaskrtError(f"--proposals must be a positive integer, got {text!r}")
    return value


def add_proposals(parser: argparse.ArgumentParser, what: str) -> None:
    """--proposals N (LoadOptions.proposals)."""
    parser.add_argument("--proposals", type=positive_count, metavar="N", help=what)


def load_options(args: argparse.Namespace, **overrides) -> LoadOptions:
    """LoadOptions from the command's arguments (unknown to the command: the default), then
    `overrides`; checked (one MaskrtError line for a bad value)."""
    given = {field: getattr(args, dest) for field, dest in _ARGS.items() if getattr(args, dest, None) is not None}
    if hasattr(args, "quiet"):
        given["progress"] = not args.quiet
    return LoadOptions(**{**given, **overrides}).checked()
