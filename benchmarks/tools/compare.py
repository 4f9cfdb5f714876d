"""This run against a saved one: median changes per benchmark, regressions beyond a threshold.

Benchmarks are matched by pytest node id (`fullname`, which includes the parameters). A change
is new median / old median - 1; it is a regression when it exceeds +threshold (default 5%),
an improvement when it is below -threshold; exactly 5% is not flagged. Medians only: the raw
rounds of a noisy 2-core machine make tails (p99) too jumpy to gate on. The table also shows
each benchmark's noise (the larger IQR / median of the two runs): a flag on a change smaller
than that noise is more likely the machine than the code, so re-run before believing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .results import Result, Run, format_time, markdown_table, pick_unit

DEFAULT_THRESHOLD = 0.05
EPS = 1e-9
REGRESSION, IMPROVED, UNCHANGED, NEW, GONE = "REGRESSION", "improved", "ok", "new", "gone"


@dataclass
class Change:
    key: str
    name: str
    group: str
    old: Result | None
    new: Result | None
    status: str

    @property
    def change(self) -> float | None:
        """Relative change of the median (+0.06 = 6% slower)."""
        if self.old is None or self.new is None or self.old.median <= 0:
            return None
        return self.new.median / self.old.median - 1.0


    @property
    def noise_text(self) -> str:
        """The larger IQR/median of the two runs; a change smaller than this is within the noise."""
        spreads = [r.spread for r in (self.old, self.new) if r is not None and r.spread is not None]
        return f"{max(spreads):.0%}" if spreads else "—"


def classify(old_median: float, new_median: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    change = new_median / old_median - 1.0 if old_median > 0 else 0.0
    if change > threshold + EPS:  # EPS: 1.05 / 1.0 - 1 is 0.05000000000000004 in floats
        return REGRESSION
    if change < -threshold - EPS:
        return IMPROVED
    return UNCHANGED


@dataclass
class Comparison:
    old_path: str
    new_path: str
    threshold: float
    changes: list[Change]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.status == REGRESSION]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.status == IMPROVED]

    def summary(self) -> str:
        matched = sum(1 for c in self.changes if c.old is not None and c.new is not None)
        return (f"{matched} benchmarks in both runs; {len(self.regressions)} regressed and "
                f"{len(self.improvements)} improved by more than {self.threshold:.0%} of the median.")

    def table_lines(self) -> list[str]:
        rows = []
        for c in self.changes:
            scale, unit = pick_unit([r.median for r in (c.old, c.new) if r is not None])
            old = f"{format_time(c.old.median, scale)} {unit}" if c.old else "—"
            new = f"{format_time(c.new.median, scale)} {unit}" if c.new else "—"
            delta = f"{c.change:+.1%}" if c.change is not None else "—"
            status = f"**{c.status}**" if c.status == REGRESSION else c.status
            rows.append([c.group, f"`{c.name}`", old, new, delta, status, c.noise_text])
        header = ["group", "benchmark", "old median", "new median", "change", "status", "noise (IQR/median)"]
        return markdown_table(header, rows, "llrrrlr")


def compare_runs(old: Run, new: Run, threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Every benchmark of either run, in the new run's order, then those only in the old one."""
    old_by_key = {r.key: r for r in old.results}
    new_keys = {r.key for r in new.results}
    changes = []
    for r in new.results:
        before = old_by_key.get(r.key)
        status = NEW if before is None else classify(before.median, r.median, threshold)
        changes.append(Change(r.key, r.name, r.group, before, r, status))
    for r in old.results:
        if r.key not in new_keys:
            changes.append(Change(r.key, r.name, r.group, r, None, GONE))
    return Comparison(old.path, new.path, threshold, changes)
