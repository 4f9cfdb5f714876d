"""`--track [--tracker FILE] [--match box|mask] [--interval N|auto]` of `maskrt run`, `maskrt eval` and `maskrt serve`.

`settings(args)` checks them before anything is opened or written (one line, exit 2, for a
missing, malformed or out-of-range tracker file, an unknown --match, an --interval that is not
a positive integer or 'auto', and tracking options without --track) and returns the
engine.stream.tracking.TrackingOptions: its `step(source, realtime)` makes the TrackingStep once
the source is open, its `score_thresholds` says what the model keeps and what is reported (the
tracker must see the low-score detections). Imports nothing heavy until `settings` runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import MaskrtError

if TYPE_CHECKING:  # the CLI builds its parser from this module before importing torch
    from ..engine.stream.tracking import TrackingOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--track, --tracker, --match, --interval (checked by `settings`, not by argparse, so that a
    bad value is one `maskrt: error:` line)."""
    p.add_argument("--track", action="store_true",
                   help="give every object an identity across frames (ByteTrack): track_id in the JSON lines, "
                        "colours and ids in the annotated video")
    p.add_argument("--tracker", metavar="FILE",
                   help="with --track: ByteTrack settings as YAML, Ultralytics' bytetrack.yaml keys "
                        "(track_high_thresh, track_low_thresh, new_track_thresh, track_buffer, match_thresh, "
                        "fuse_score) and maskrt's match, duplicate_iou, gap_buffer, unconfirmed_buffer, confirm_velocity")
    p.add_argument("--match", metavar="{box,mask}",
                   help="with --track: associate detections with tracks by box IoU (default) or by mask IoU")
    p.add_argument("--interval", metavar="N|auto",
                   help="with --track: run the engine on every N-th frame and carry the tracks (boxes predicted, "
                        "masks moved with them) over the others (default 1); auto, with --realtime: as often as "
                        "the machine allows, every frame still gets an output")


def settings(args: argparse.Namespace) -> "TrackingOptions | None":
    """The checked settings of --track (None without it); MaskrtError for any bad value."""
    given = [f"--{name}" for name in ("tracker", "match", "interval") if getattr(args, name, None) is not None]
    if not getattr(args, "track", False):
        if given:
            raise MaskrtError(f"{', '.join(given)} apply to tracking: add --track")
        return None
    from ..engine.stream.tracking import TrackingOptions

    return TrackingOptions.options(args.tracker, args.match, args.interval)
