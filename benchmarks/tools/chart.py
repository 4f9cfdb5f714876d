"""PNG chart of per-stage latency: one horizontal-bar panel per model-stage group.

A model-stage group is one whose benchmarks carry `extra_info["stage"]` (benchmarks/model_stages
sets it). Bars are medians, whiskers reach p90; the x axis turns logarithmic when the stages
span more than two decades (a 2 s backbone beside a 5 ms RPN).
"""

from __future__ import annotations

import io
from pathlib import Path

from .output import write_atomic
from .results import Result, Run


def stage_groups(run: Run) -> dict[str, list[Result]]:
    return {g: rs for g, rs in run.groups().items() if any(r.is_stage for r in rs)}


def stage_label(result: Result) -> str:
    info = result.extra_info
    label = str(info.get("stage", result.name))
    return f"{label} [{info['impl']}]" if info.get("impl") else label


def render_chart(run: Run) -> bytes | None:
    """The chart as PNG bytes, or None when the run has no model-stage group."""
    groups = stage_groups(run)
    if not groups:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    heights = [max(1.6, 0.38 * len(rs) + 1.0) for rs in groups.values()]
    fig, axes = plt.subplots(len(groups), 1, figsize=(8.5, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    try:
        for ax, (group, results) in zip(axes[:, 0], groups.items()):
            _panel(ax, group, [r for r in results if r.is_stage])
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _panel(ax, group: str, results: list[Result]) -> None:
    ms = [r.median * 1e3 for r in results]
    p90 = [(r.p90 if r.p90 is not None else r.median) * 1e3 for r in results]
    ys = list(range(len(results)))[::-1]  # first stage on top
    ax.barh(ys, ms, color="#4C72B0", height=0.6)
    ax.errorbar(ms, ys, xerr=[[0] * len(ms), [max(0.0, b - a) for a, b in zip(ms, p90)]], fmt="none",
                ecolor="#333333", capsize=3, linewidth=1)
    ax.set_yticks(ys, [stage_label(r) for r in results])
    positive = [m for m in ms if m > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_xscale("log")
    for y, m, whisker in zip(ys, ms, p90):
        ax.annotate(f"  {m:.3g} ms", (max(m, whisker), y), va="center", fontsize=8)
    ax.set_xlabel("median latency per call (ms); whisker: p90")
    ax.set_title(group, fontsize=10)
    ax.margins(x=0.18)


def write_chart(run: Run, path: str | Path) -> Path | None:
    png = render_chart(run)
    return None if png is None else write_atomic(path, png)
