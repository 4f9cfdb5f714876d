"""Markdown report (and stage chart, and comparison) from pytest-benchmark JSON.

    python -m benchmarks.report RESULTS.json -o benchmarks/results/REPORT.md \
        [--chart benchmarks/results/stages.png] [--compare OLD.json [--threshold 0.05] [--fail-on-regression]]

RESULTS.json is what `pytest --benchmark-json=RESULTS.json` writes (it always holds every
round's raw timing, from which the percentiles are computed). Outputs are written atomically.
Exit status: 0; 1 when --fail-on-regression and a median regressed by more than the threshold;
2 when an input cannot be read. See benchmarks/README.md for how to read the report.
"""

from __future__ import annotations

import argparse
import sys

from .tools.chart import write_chart
from .tools.compare import DEFAULT_THRESHOLD, compare_runs
from .tools.markdown import render_report
from .tools.output import write_atomic
from .tools.results import ResultsError, load_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="pytest-benchmark JSON (from --benchmark-json)")
    parser.add_argument("-o", "--output", help="Markdown report to write (default: print it)")
    parser.add_argument("--chart", help="PNG of the median latency per model stage")
    parser.add_argument("--compare", metavar="OLD.json", help="a saved run to compare medians with")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="relative median change flagged as a regression/improvement (default 0.05)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when any median regressed by more than the threshold")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = load_run(args.results)
        comparison = compare_runs(load_run(args.compare), run, args.threshold) if args.compare else None
    except ResultsError as exc:
        print(f"benchmarks.report: {exc}", file=sys.stderr)
        return 2
    chart = None
    if args.chart:
        chart = write_chart(run, args.chart)
        if chart is None:
            print(f"benchmarks.report: no model-stage results in {args.results}; {args.chart} not written",
                  file=sys.stderr)
    report = render_report(run, chart=chart, comparison=comparison, report_path=args.output)
    if args.output:
        write_atomic(args.output, report)
        print(f"wrote {args.output}" + (f" and {chart}" if chart else ""))
    else:
        sys.stdout.write(report)
    if comparison is not None:
        if args.output:  # else it was printed with the report
            print("\n".join([comparison.summary(), *comparison.table_lines()]))
        if args.fail_on_regression and comparison.regressions:
            names = ", ".join(c.name for c in comparison.regressions)
            print(f"benchmarks.report: {len(comparison.regressions)} regression(s) beyond "
                  f"{args.threshold:.0%}: {names}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
