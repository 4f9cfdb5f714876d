"""The detector-interval chart: speed and tracking quality per interval, from a benchmark JSON.

    python -m benchmarks.tracking.chart RESULTS.json -o tracking-intervals.png

Reads the group "tracking intervals ..." of test_intervals.py (its extra_info): left, output
frames per second and engine calls per second per interval (wall clock); middle, the process's
CPU milliseconds per output frame; right, HOTA and IDF1 by mask IoU.
Written atomically (benchmarks.tools.output.write_atomic).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from benchmarks.tools.output import write_atomic
from benchmarks.tools.results import ResultsError, Result, load_run

GROUP_PREFIX = "tracking intervals"


def interval_results(path: str | Path) -> tuple[str, list[Result]]:
    """(group name, its results in run order) of the interval group in a results file."""
    for group, results in load_run(path).groups().items():
        if group.startswith(GROUP_PREFIX):
            return group, results
    raise ResultsError(f"{path}: no group named '{GROUP_PREFIX} ...'")


def render(group: str, results: list[Result]) -> bytes:
    """The two-panel chart as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    labels = [str(r.extra_info.get("interval", r.name)) for r in results]
    xs = range(len(results))
    fig, (speed, cpu, quality) = plt.subplots(1, 3, figsize=(13, 3.8))
    try:
        width = 0.38
        speed.bar([x - width / 2 for x in xs], [r.extra_info["out_fps"] for r in results], width,
                  label="output frames/s", color="#4C72B0")
        speed.bar([x + width / 2 for x in xs], [r.extra_info["engine_per_s"] for r in results], width,
                  label="engine calls/s", color="#DD8452")
        speed.set_xticks(list(xs), labels)
        speed.set_xlabel("interval")
        speed.set_title("speed")
        speed.legend(fontsize=8)
        cpu.bar(list(xs), [r.extra_info.get("cpu_ms_per_frame", 0.0) for r in results], 0.6, color="#8172B3")
        cpu.set_xticks(list(xs), labels)
        cpu.set_xlabel("interval")
        cpu.set_title("CPU ms per output frame (all threads)")
        for key, name, color in (("mask_hota", "HOTA (mask)", "#55A868"), ("mask_idf1", "IDF1 (mask)", "#C44E52")):
            quality.plot(list(xs), [r.extra_info[key] for r in results], marker="o", label=name, color=color)
        quality.set_xticks(list(xs), labels)
        quality.set_ylim(0, 1)
        quality.set_xlabel("interval")
        quality.set_title("tracking quality")
        quality.legend(fontsize=8)
        fig.suptitle(group, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking.chart", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON holding the interval group")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        group, results = interval_results(args.results)
    except ResultsError as exc:
        print(f"chart: error: {exc}", file=sys.stderr)
        return 2
    write_atomic(args.output, render(group, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
