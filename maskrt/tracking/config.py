"""ByteTrack settings under Ultralytics' names and defaults (ultralytics/cfg/trackers/bytetrack.yaml).

A YAML file holds any subset of the keys below; missing keys keep their defaults:

    tracker_type: bytetrack  # the only tracker here
    track_high_thresh: 0.25  # detections scoring >= this enter the first association
    track_low_thresh: 0.1    # detections scoring in (this, track_high_thresh) enter the second one
    new_track_thresh: 0.25   # an unmatched detection scoring >= this starts a track
    track_buffer: 30         # frames (of a 30 fps video) a lost track is kept for
    match_thresh: 0.8        # largest cost (1 - IoU, or 1 - IoU * score) of a first-stage match
    fuse_score: true         # multiply IoU by the detection score in the first and third stages
    match: box               # maskrt's own key: associate by box IoU (box) or by mask IoU (mask)
    gap_buffer: 0.3          # maskrt's own key: box IoU after a gap of g frame intervals compares boxes
                             # grown by gap_buffer * (g - 1) of their size on each side (0: plain IoU)
    unconfirmed_buffer: 0.3  # maskrt's own key: the association of unconfirmed tracks (seen once, no velocity
                             # yet) compares boxes grown by this much of their size on each side (0: plain IoU)
    confirm_velocity: true   # maskrt's own key: a track confirmed by its second detection starts at the
                             # velocity between its two detections (false: at rest, as Ultralytics)
    duplicate_iou: 0.7       # maskrt's own key: with tracking in a stream, a detection overlapping a
                             # higher-scoring one with box IoU above this, of any class, is the same
                             # object and is dropped before association (1: keep every detection)

Every problem (a missing or unreadable file, YAML that does not parse, an unknown key, a value
of the wrong type or out of range) raises `maskrt.errors.MaskrtError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import MaskrtError

MATCH_MODES = ("box", "mask")
_BUFFERS = ("gap_buffer", "unconfirmed_buffer")
_UNIT_FLOATS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh", "duplicate_iou")


@dataclass(frozen=True)
class TrackerConfig:
    """Validated ByteTrack settings (see the module docstring); invalid values raise MaskrtError."""

    tracker_type: str = "bytetrack"
    track_high_thresh: float = 0.25
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.25
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    match: str = "box"
    gap_buffer: float = 0.3
    unconfirmed_buffer: float = 0.3
    confirm_velocity: bool = True
    duplicate_iou: float = 0.7

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise MaskrtError(f"tracker config: {problem}")
        for name in (*_UNIT_FLOATS, *_BUFFERS):  # YAML's `1` is an int: store every threshold as a float
            object.__setattr__(self, name, float(getattr(self, name)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "tracker config") -> "TrackerConfig":
        """Settings from a mapping of key -> value; `source` starts every error message."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [str(key) for key in values if key not in known]
        if unknown:
            raise MaskrtError(f"{source}: unknown key {unknown[0]!r} (known keys: {', '.join(known)})")
        try:
            return cls(**values)
        except MaskrtError as exc:
            raise MaskrtError(str(exc).replace("tracker config", source, 1)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrackerConfig":
        """Settings from a YAML file holding a mapping (an empty file means all defaults)."""
        source = f"tracker config {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MaskrtError(f"{source}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MaskrtError(f"{source}: cannot be read ({_one_line(exc)})") from None
        values = _parse_yaml(text, source)
        return cls.from_dict(values, source)


def _parse_yaml(text: str, source: str) -> dict:
    """The YAML mapping in `text`; {} for an empty document."""
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MaskrtError(f"{source}: not valid YAML ({_yaml_problem(exc)})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise MaskrtError(f"{source}: must be a mapping of key: value, got {type(values).__name__}")
    return values


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line L, column C: problem' of a PyYAML error, on one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or _one_line(exc)
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _problem(config: TrackerConfig) -> str | None:
    """What is wrong with `config`, as a message without its source; None when it is valid."""
    if config.tracker_type != "bytetrack":
        return f"tracker_type must be 'bytetrack', got {config.tracker_type!r}"
    for name in _UNIT_FLOATS:
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            return f"{name} must be a number in [0, 1], got {value!r}"
    if config.track_low_thresh > config.track_high_thresh:
        return (f"track_low_thresh ({config.track_low_thresh}) must not exceed "
                f"track_high_thresh ({config.track_high_thresh})")
    if not isinstance(config.track_buffer, int) or isinstance(config.track_buffer, bool) or config.track_buffer < 0:
        return f"track_buffer must be an integer >= 0, got {config.track_buffer!r}"
    for name in ("fuse_score", "confirm_velocity"):
        if not isinstance(getattr(config, name), bool):
            return f"{name} must be true or false, got {getattr(config, name)!r}"
    for name in _BUFFERS:
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 <= value <= 10.0:
            return f"{name} must be a number in [0, 10], got {value!r}"
    if config.match not in MATCH_MODES:
        return f"match must be one of {', '.join(MATCH_MODES)}, got {config.match!r}"
    return None


def _is_number(value: Any) -> bool:
    """True for an int or a float that is not a bool (YAML's `true` is no threshold)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
