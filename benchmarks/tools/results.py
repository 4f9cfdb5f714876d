"""pytest-benchmark JSON -> per-benchmark results with percentiles computed from the raw timings.

pytest-benchmark's own statistics have no percentiles. `--benchmark-json=PATH` always writes
every round's time in `stats["data"]` (seconds per call: a round's time divided by its
iterations); `--benchmark-save` writes them only with `--benchmark-save-data`. Median, p90, p99
and min here come from those raw timings (numpy's default, linearly interpolated percentiles);
a file without them falls back to pytest-benchmark's median and min, and p90/p99 are unknown.

Conventions the suites follow (see benchmarks/README.md):
- `benchmark.group`: one table per group; ratios are only taken within a group (same run).
- `extra_info["baseline"] = True` marks the group's baseline. Without one, the first benchmark
  (in run order) whose name contains "torchvision" is the baseline; otherwise the group has none.
- `extra_info["flops"]`: floating-point operations of one call (counted, e.g. FlopCounterMode).
- group "machine", `extra_info["gflops_per_s"]`: the machine's attainable GFLOP/s (large matmul),
  `extra_info["dtype"]` its compute dtype ("float32" when absent).
- `extra_info["compute_dtype"]`: the dtype a FLOP-counted benchmark computes in ("float32" when
  absent); its attained GFLOP/s is compared with the machine limit of that dtype.
- `extra_info["stage"]`: a model-stage benchmark (drawn in the per-stage latency chart).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MACHINE_GROUP = "machine"
BASELINE_NAME_HINT = "torchvision"


class ResultsError(Exception):
    """A results file that cannot be read; the message says what is wrong in one line."""


@dataclass
class Result:
    """One benchmark of one run. Times in seconds per call."""

    group: str
    name: str
    fullname: str
    stats: dict
    extra_info: dict = field(default_factory=dict)
    data: np.ndarray | None = None

    @property
    def key(self) -> str:
        """Identity across runs: the pytest node id (includes the parameters)."""
        return self.fullname or self.name

    @property
    def rounds(self) -> int:
        return int(self.data.size) if self.data is not None else int(self.stats.get("rounds", 0))

    @property
    def has_raw(self) -> bool:
        return self.data is not None and self.data.size > 0

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100) of the raw timings, numpy's linear interpolation."""
        return float(np.percentile(self.data, q)) if self.has_raw else None

    @property
    def median(self) -> float:
        return float(np.median(self.data)) if self.has_raw else float(self.stats["median"])

    @property
    def p90(self) -> float | None:
        return self.percentile(90)

    @property
    def p99(self) -> float | None:
        return self.percentile(99)

    @property
    def min(self) -> float:
        return float(self.data.min()) if self.has_raw else float(self.stats["min"])

    @property
    def spread(self) -> float | None:
        """Interquartile range / median of the raw timings: how noisy this benchmark's rounds were."""
        if not self.has_raw or self.median <= 0:
            return None
        q1, q3 = np.percentile(self.data, [25, 75])
        return float((q3 - q1) / self.median)

    @property
    def flops(self) -> float | None:
        value = self.extra_info.get("flops")
        return float(value) if value else None

    @property
    def is_stage(self) -> bool:
        return "stage" in self.extra_info


@dataclass
class Run:
    """One results file: its benchmarks in run order plus the machine and commit it ran on."""

    path: str
    results: list[Result]
    machine_info: dict = field(default_factory=dict)
    commit_info: dict = field(default_factory=dict)
    datetime: str = ""

    def groups(self) -> dict[str, list[Result]]:
        """Group name -> its results, groups in order of first appearance."""
        out: dict[str, list[Result]] = {}
        for r in self.results:
            out.setdefault(r.group, []).append(r)
        return out

    def machine_limit(self, dtype: str = "float32") -> Result | None:
        """The "machine" benchmark with the best attainable GFLOP/s in `dtype` (None if none ran)."""
        limits = [r for r in self.results
                  if r.group == MACHINE_GROUP and gflops_per_s(r) and r.extra_info.get("dtype", "float32") == dtype]
        return max(limits, key=gflops_per_s, default=None)


def gflops_per_s(result: Result) -> float | None:
    """The benchmark's own GFLOP/s figure, else flops / median."""
    if result.extra_info.get("gflops_per_s"):
        return float(result.extra_info["gflops_per_s"])
    if result.flops and result.median > 0:
        return result.flops / result.median / 1e9
    return None


def parse_result(entry: dict) -> Result:
    stats = entry.get("stats") or {}
    if "median" not in stats and "data" not in stats:
        raise ResultsError(f"benchmark {entry.get('fullname') or entry.get('name')!r} has no stats")
    data = stats.get("data")
    array = np.asarray(data, dtype=np.float64) if data else None
    return Result(
        group=entry.get("group") or "(no group)",
        name=str(entry.get("name", "?")),
        fullname=str(entry.get("fullname") or entry.get("name", "?")),
        stats=stats,
        extra_info=dict(entry.get("extra_info") or {}),
        data=array,
    )


def parse_run(doc: dict, path: str = "<memory>") -> Run:
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultsError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    results = [parse_result(entry) for entry in doc["benchmarks"]]
    return Run(path, results, doc.get("machine_info") or {}, doc.get("commit_info") or {}, doc.get("datetime", ""))


def load_run(path: str | Path) -> Run:
    """Read a file written by `pytest --benchmark-json=PATH` (or --benchmark-save[-data])."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot read it as JSON ({exc})") from None
    return parse_run(doc, str(path))


def baseline_of(results: list[Result]) -> Result | None:
    """The group's baseline: extra_info["baseline"] true, else the first with "torchvision" in its name."""
    for r in results:
        if r.extra_info.get("baseline"):
            return r
    for r in results:
        if BASELINE_NAME_HINT in r.name.lower():
            return r
    return None


def speedup(baseline: Result, result: Result) -> float:
    """How many times faster than the baseline (baseline median / median); < 1 is slower."""
    return baseline.median / result.median if result.median > 0 else float("inf")


def format_speedup(ratio: float) -> str:
    """4.1 -> "4.1x faster"; 0.8 -> "0.8x" (slower: takes 1/0.8 = 1.25 times as long)."""
    if ratio >= 1.0:
        return f"{ratio:.1f}x faster"
    return f"{ratio:.2g}x"


UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def pick_unit(seconds: list[float]) -> tuple[float, str]:
    """The largest unit in which the smallest positive value is at least 1."""
    positive = [s for s in seconds if s and s > 0]
    smallest = min(positive) if positive else 1.0
    for scale, unit in UNITS:
        if smallest >= scale:
            return scale, unit
    return UNITS[-1]


def format_time(seconds: float | None, scale: float) -> str:
    if seconds is None:
        return "n/a"
    value = seconds / scale
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table's lines; align: one 'l' or 'r' per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines
