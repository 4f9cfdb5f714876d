"""The end-of-job summary: per input done / skipped / failed (one-line reason), problems,
re-executions, frames and frames per second across the workers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field


@dataclass
class InputResult:
    """status: "done" (written by this run), "skipped" (finished by an earlier run) or "failed"."""

    spec: str
    status: str
    name: str | None = None
    frames: int = 0
    reason: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """frames: frames segmented by this run (re-done work not counted twice); seconds: wall time
    from the first unit handed out to the last result; reexecutions: attempts beyond the first,
    over every unit (Ray retried the task after a worker died, or a rerun found it finished)."""

    workers: int = 0
    results: list[InputResult] = field(default_factory=list)
    reexecutions: int = 0
    frames: int = 0
    seconds: float = 0.0
    mode: str = "local"

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every input is done or skipped without problems, else 1 (as `maskrt run`)."""
        return 1 if any(r.status == "failed" or r.problems for r in self.results) else 0

    def as_dict(self) -> dict:
        return {"inputs": len(self.results), "done": self.count("done"), "skipped": self.count("skipped"),
                "failed": self.count("failed"), "reexecutions": self.reexecutions, "frames": self.frames,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 3), "workers": self.workers,
                "mode": self.mode, "results": [vars(r) for r in self.results]}

    def write_json(self, path) -> None:
        from pathlib import Path

        from ..safeio import write_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(self.as_dict(), indent=1) + "\n").encode("utf-8"), path.parent)

    def print(self, file=sys.stderr) -> None:
        print(f"maskrt: batch: {len(self.results)} input(s): {self.count('done')} done, "
              f"{self.count('skipped')} skipped (finished earlier), {self.count('failed')} failed; "
              f"{self.reexecutions} re-execution(s); {self.frames} frames in {self.seconds:.1f} s "
              f"({self.fps:.1f} fps over {self.workers} worker(s), {self.mode})", file=file)
        for r in self.results:
            if r.status == "failed":
                print(f"maskrt: failed: {r.spec}: {r.reason}", file=file)
            for problem in r.problems:
                print(f"maskrt: warning: {r.spec}: {problem}", file=file)
