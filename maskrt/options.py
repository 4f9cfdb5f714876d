"""The options every entry point shares: the choice lists and how a model is loaded.

`LoadOptions` is what `maskrt.load` takes besides the model's path, in one record: the Python
API, `maskrt run`, `maskrt batch` (every worker), `maskrt serve` (every replica) and the streams
all carry one and load with `maskrt.api.load_with(path, options)`, so an option means the same
everywhere and is validated in one place (`LoadOptions.checked`). The CLI's choice lists come
from the tuples below.

Two score thresholds, two names:
- `score_threshold` (here, and `maskrt.load`): the model's own threshold, torchvision's
  box_score_thresh: detections scoring at or below it are dropped inside the detector, before
  NMS and the mask head.
- `min_score` (`Segmenter.stream`, the CLI's `--score-threshold` of run, batch and serve): what is
  reported: detections scoring below it are removed after the per-frame steps (a tracker sees
  everything the model kept).

Leaf module: no torch, no maskrt imports but errors (the CLI imports it before anything heavy).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from .errors import MaskrtError

BACKENDS = ("auto", "torch", "openvino", "tensorrt")  # maskrt.load(backend=...), --backend
ENGINE_BACKENDS = ("auto", "openvino", "tensorrt")  # backends that run an engine folder (batch workers)
TARGETS = ("cpu", "tensorrt")  # maskrt build --target; manifest "target"
PRECISIONS = ("fp32", "fp16", "int8")  # maskrt build --precision; manifest "precision"


def positive_int(name: str, value, allow_none: bool = True):
    """`value` if it is an integer >= 1 (None allowed when allow_none); else one MaskrtError line."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise MaskrtError(f"{name} must be a positive integer, got {value!r}")
    return value


def probability(name: str, value, allow_none: bool = True):
    """`value` if it is a finite number in [0, 1] (None allowed when allow_none); else one line."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise MaskrtError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class Number:
    """The argparse `type` of a numeric command-line option: text -> an int (kind int) or a
    finite float (kind float) in its range, else argparse.ArgumentTypeError naming the range,
    which the CLI prints as its one error line. low: the smallest value (above: low itself is
    excluded); high: the largest (None: no upper bound). Every int and float option of every
    command is one of these (tests/test_cli_numbers.py reads the ranges from the parser)."""

    def __init__(self, kind: type = int, low: float | None = None, high: float | None = None, above: bool = False):
        self.kind, self.low, self.high, self.above = kind, low, high, above
        self.__name__ = kind.__name__  # argparse names the type in some messages

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        if self.kind is int and self.low == 1 and self.high is None:
            return "a positive integer"
        if self.high is None:
            return f"{noun} {'above' if self.above else 'of at least'} {self.low:g}"
        if self.above:
            return f"{noun} above {self.low:g} and at most {self.high:g}"
        return f"{noun} from {self.low:g} to {self.high:g}" if self.kind is int else \
            f"a number in [{self.low:g}, {self.high:g}]"

    def __call__(self, text: str):
        import argparse

        try:
            value = self.kind(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or not math.isfinite(value) or (self.low is not None and (
                value < self.low or (self.above and value == self.low))) or \
                (self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value


def choice(name: str, value, choices: tuple[str, ...], allow_none: bool = False):
    """`value` if it is one of `choices`; else one MaskrtError line listing them."""
    if value is None and allow_none:
        return value
    if value not in choices:
        raise MaskrtError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class LoadOptions:
    """How a model is loaded (see `maskrt.load` for each option's meaning).

    device: torch device of the torch backend; backend: one of BACKENDS; precision: a
    checkpoint's CPU engine precision (None: fp32, or an engine's own); score_threshold,
    nms_threshold, max_detections: the detector's (torchvision's box_score_thresh,
    box_nms_thresh, box_detections_per_img); min_size / max_size: input-size policy override;
    batch_size: images per backend call; num_threads: inference threads (None: all cores);
    proposals: RPN proposals per image (post-NMS top-N; None: the engine's or checkpoint's own);
    requests: frames a CPU engine holds at once (2: two frames' stages overlapped in a stream);
    calibration / calibration_size: int8 calibration set; progress: show first-use build steps.
    config: a detectron2 YAML config for a detectron2 checkpoint (None: the model zoo's settings).
    """

    device: str = "cpu"
    backend: str = "auto"
    precision: str | None = None
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100
    min_size: int | None = None
    max_size: int | None = None
    batch_size: int = 1
    num_threads: int | None = None
    proposals: int | None = None
    requests: int = 1
    calibration: str | None = None
    calibration_size: int | None = None
    progress: bool = True
    config: str | None = None

    def checked(self) -> "LoadOptions":
        """self, every field validated (one MaskrtError line naming the first bad one)."""
        choice("backend", self.backend, BACKENDS)
        choice("precision", self.precision, PRECISIONS, allow_none=True)
        if not isinstance(self.device, str) or not self.device:
            raise MaskrtError(f"device must be a torch device name such as 'cpu' or 'cuda', got {self.device!r}")
        probability("score_threshold", self.score_threshold, allow_none=False)
        probability("nms_threshold", self.nms_threshold, allow_none=False)
        positive_int("max_detections", self.max_detections, allow_none=False)
        positive_int("batch_size", self.batch_size, allow_none=False)
        positive_int("requests", self.requests, allow_none=False)
        for name in ("min_size", "max_size", "num_threads", "proposals"):
            positive_int(name, getattr(self, name))
        size = self.calibration_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1):
            raise MaskrtError(f"--calibration-size must be at least 1, got {size!r}")
        if self.precision != "int8" and (self.calibration is not None or self.calibration_size is not None):
            raise MaskrtError("--calibration and --calibration-size apply to --precision int8 only")
        if self.config is not None and (not isinstance(self.config, str) or not self.config):
            raise MaskrtError(f"config must be the path of a detectron2 YAML config, got {self.config!r}")
        return self

    def replace(self, **changes) -> "LoadOptions":
        """A copy with `changes` applied (not yet checked)."""
        return dataclasses.replace(self, **changes)

    def as_kwargs(self) -> dict:
        """The fields as keyword arguments of `maskrt.load` (besides path_or_name)."""
        return dataclasses.asdict(self)
