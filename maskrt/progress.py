"""The progress bars of `maskrt eval` and `maskrt run`: tqdm on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """tqdm on stderr, redrawn up to 10 times a second on a terminal but only every 30 s when
    stderr is a log file (each redraw there is another line of carriage-return noise)."""
    interval = 0.1 if sys.stderr.isatty() else 30.0
    return tqdm(iterable, file=sys.stderr, mininterval=interval, **kwargs)
