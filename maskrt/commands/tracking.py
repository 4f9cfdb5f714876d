"""`--track [--tracker FILE] [--match box|mask] [--interval N|auto]` of `maskrt run` and `maskrt eval`.

`settings(args)` checks them before anything is opened or written (one line, exit 2, for a
missing, malformed or out-of-range tracker file, an unknown --match, an --interval that is not
a positive integer or 'auto', and tracking options without --track); `step(...)` makes the
TrackingStep once the source is open (its frame rate); `score_thresholds` says what the model
keeps and what is reported (the tracker must see the low-score detections).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..engine.stream.tracking import AUTO, TrackingStep, parse_interval, tracker_config
from ..errors import MaskrtError
from ..tracking import TrackerConfig


@dataclass(frozen=True)
class Tracking:
    """Checked tracking settings: the tracker's config (match applied) and the interval."""

    config: TrackerConfig
    interval: int | str

    def step(self, source, realtime: bool) -> TrackingStep:
        """The TrackingStep for an opened source; --interval auto needs real time."""
        if self.interval == AUTO and not realtime:
            raise MaskrtError("--interval auto needs --realtime (on by default for cameras and URLs): offline, "
                              "every frame is segmented anyway")
        return TrackingStep(self.config, frame_rate=source.fps or 30.0, interval=self.interval)

    def score_thresholds(self, report: float) -> tuple[float, float]:
        """(the model's own score threshold, the report filter min_score) for --score-threshold
        `report`: the model keeps what ByteTrack's second association needs (scores above
        track_low_thresh), and `report` filters what is written, after association."""
        return min(report, self.config.track_low_thresh), report


def settings(args: argparse.Namespace) -> Tracking | None:
    """The checked settings of --track (None without it); MaskrtError for any bad value."""
    given = [f"--{name}" for name in ("tracker", "match", "interval") if getattr(args, name, None) is not None]
    if not getattr(args, "track", False):
        if given:
            raise MaskrtError(f"{', '.join(given)} apply to tracking: add --track")
        return None
    interval = parse_interval(args.interval) if args.interval is not None else 1
    return Tracking(tracker_config(args.tracker, args.match), interval)
