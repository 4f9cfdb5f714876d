"""The Markdown report: one table per group, the FLOP / machine-limit table, the comparison."""

from __future__ import annotations

from pathlib import Path

from .compare import Comparison
from .results import (
    MACHINE_GROUP,
    Result,
    Run,
    baseline_of,
    format_speedup,
    format_time,
    gflops_per_s,
    markdown_table,
    pick_unit,
    speedup,
)

READING = (
    "Times are per call. median, p90 and p99 are computed from every round's raw timing "
    "(numpy percentiles, linear interpolation); min is the fastest round. "
    "\"vs baseline\" = the baseline's median / this median, within the same group of the same run: "
    "\"4.1x faster\" takes a quarter of the baseline's time, \"0.8x\" takes 1.25 times as long. "
    "The baseline is the benchmark marked `extra_info[\"baseline\"]`, else the first whose name "
    "contains \"torchvision\"; a group without either has no ratios."
)


# extra_info keys shown elsewhere (ratios, FLOP table, chart) or of no interest to a reader.
HIDDEN_INFO = {"baseline", "stage", "impl", "flops", "planned_rounds", "gflops_per_s"}


def info_text(result: Result) -> str:
    """Short extra_info items (fps, latency, memory...) as "key=value" pairs."""
    items = []
    for key, value in result.extra_info.items():
        if key in HIDDEN_INFO or isinstance(value, (dict, list)) or len(str(value)) > 40:
            continue
        items.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(items)


def group_table(results: list[Result]) -> list[str]:
    """The group's table (name, rounds, median, p90, p99, min, vs baseline) and a note on its baseline."""
    scale, unit = pick_unit([r.median for r in results])
    base = baseline_of(results)
    rows = []
    for r in results:
        if base is None:
            ratio = "—"
        elif r is base:
            ratio = "baseline"
        else:
            ratio = format_speedup(speedup(base, r))
        rows.append([f"`{r.name}`", str(r.rounds), *(format_time(v, scale) for v in (r.median, r.p90, r.p99, r.min)),
                     ratio])
    header = ["benchmark", "rounds", f"median ({unit})", f"p90 ({unit})", f"p99 ({unit})", f"min ({unit})",
              "vs baseline"]
    align = None
    infos = [info_text(r) for r in results]
    if any(infos):
        header.append("extra_info")
        rows = [row + [info] for row, info in zip(rows, infos)]
        align = "l" + "r" * 6 + "l"
    lines = markdown_table(header, rows, align)
    if base is not None:
        lines += ["", f"Baseline: `{base.name}`."]
    if any(not r.has_raw for r in results):
        lines += ["", "n/a: this file has no raw timings for that benchmark (save with --benchmark-json)."]
    return lines


def machine_lines(run: Run, dtypes: list[str]) -> list[str]:
    """One line per compute dtype: the best matmul figure measured for it this run."""
    lines = []
    for dtype in dtypes:
        source = run.machine_limit(dtype)
        if source is None:
            lines.append(f"- {dtype}: not measured in this run (benchmarks/machine did not run).")
        else:
            library = source.extra_info.get("library", "")
            lines.append(f"- {dtype}: **{gflops_per_s(source):.1f} GFLOP/s** attainable "
                         f"(`{source.name}`, {library} matmul, median round)")
    return lines


def compute_dtype(result) -> str:
    return result.extra_info.get("compute_dtype", "float32")


def flops_table(run: Run) -> list[str]:
    """Each benchmark with counted FLOPs: GFLOP, attained GFLOP/s and its fraction of the machine
    limit for the dtype it computes in."""
    counted = [r for r in run.results if r.flops and r.group != MACHINE_GROUP]
    if not counted:
        return []
    rows = []
    for r in counted:
        rate = r.flops / r.median / 1e9
        limit = run.machine_limit(compute_dtype(r))
        share = f"{100 * rate / gflops_per_s(limit):.1f}%" if limit else "n/a"
        rows.append([r.group, f"`{r.name}`", f"{r.flops / 1e9:.3g}", format_time(r.median, 1e-3), f"{rate:.3g}",
                     compute_dtype(r), share])
    header = ["group", "benchmark", "GFLOP", "median (ms)", "GFLOP/s", "computes in", "of machine limit"]
    intro = ("FLOPs are counted once per call (torch.utils.flop_counter: convolutions and matrix products; "
             "RoIAlign, NMS and elementwise work are not counted). Attained = FLOPs / median, compared with "
             "the limit of the dtype the benchmark computes in.")
    dtypes = sorted({compute_dtype(r) for r in counted}, key=lambda d: d != "float32")
    return ["## FLOPs and the machine limit", "", "Machine limits (large matrix multiply):", "",
            *machine_lines(run, dtypes), "", intro, "", *markdown_table(header, rows, "llrrrlr"), ""]


def comparison_section(comparison: Comparison) -> list[str]:
    lines = [f"## Comparison with `{comparison.old_path}`", "", comparison.summary(), ""]
    return lines + comparison.table_lines() + [""]


def header_lines(run: Run, source: str) -> list[str]:
    mi, ci = run.machine_info, run.commit_info
    lines = ["# Benchmark report", "", f"Results: `{source}`" + (f", {run.datetime}" if run.datetime else "")]
    lines.append(f"Machine: {machine_text(mi)}, "
                 f"{mi.get('python_implementation', 'Python')} {mi.get('python_version', '?')}")
    limits = limits_text(run)
    if limits:
        lines.append(f"Machine limits measured in this run: {limits}")
    if mi.get("maskrt"):
        lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in sorted(mi["maskrt"].items())))
    if ci.get("id"):
        lines.append(f"Commit: {str(ci['id'])[:12]}{' (dirty)' if ci.get('dirty') else ''}")
    return lines + ["", READING, ""]


def machine_text(machine_info: dict) -> str:
    """The CPU as maskrt.machine describes it (model, cores, ISA kind and flags); older results
    files only have pytest-benchmark's brand string and CPU count."""
    described = machine_info.get("maskrt_cpu") or {}
    if described.get("summary"):
        return described["summary"]
    cpu = machine_info.get("cpu") or {}
    return f"{cpu.get('brand_raw') or machine_info.get('processor') or '?'}, {cpu.get('count', '?')} CPUs"


def limits_text(run: Run) -> str:
    """"float32 411 GFLOP/s, bfloat16 782 GFLOP/s": the best matmul of each dtype this run measured."""
    dtypes = sorted({r.extra_info.get("dtype", "float32") for r in run.results if r.group == MACHINE_GROUP})
    parts = []
    for dtype in dtypes:
        limit = run.machine_limit(dtype)
        if limit is not None:
            parts.append(f"{dtype} {gflops_per_s(limit):.0f} GFLOP/s ({limit.extra_info.get('library', '?')})")
    return ", ".join(parts)


def render_report(run: Run, chart: str | Path | None = None, comparison: Comparison | None = None,
                  report_path: str | Path | None = None) -> str:
    """The whole Markdown report as one string."""
    lines = header_lines(run, run.path)
    if comparison is not None:
        lines += comparison_section(comparison)
    if chart is not None:
        link = _relative(Path(chart), Path(report_path).parent if report_path else None)
        lines += [f"![median latency per model stage]({link})", ""]
    for group, results in run.groups().items():
        lines += [f"## {group}", "", *group_table(results), ""]
    lines += flops_table(run)
    return "\n".join(lines).rstrip() + "\n"


def _relative(path: Path, start: Path | None) -> str:
    import os

    if start is None:
        return path.as_posix()
    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # different drives
        return path.as_posix()
