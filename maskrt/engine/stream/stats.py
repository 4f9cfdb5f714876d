"""Per-stage timing for the streaming pipeline, in bounded memory.

Each stage keeps its durations in a fixed-size ring (the most recent `capacity` samples), so a
run of any length uses the same memory; counts and totals cover the whole run. Percentiles are
computed over the ring. Times are seconds internally and milliseconds in summaries.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np

# Pipeline stages in order, then "latency": decode start to written, per frame (end to end).
STAGES = ("decode", "preprocess", "infer", "postprocess", "render", "encode", "latency")


class StageTimes:
    """Durations of one stage: a ring of the last `capacity` samples plus whole-run count/total/max."""

    def __init__(self, capacity: int = 65536):
        self._ring = np.zeros(capacity, dtype=np.float64)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self._ring[self.count % self._ring.shape[0]] = seconds
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def samples(self) -> np.ndarray:
        """float64 [min(count, capacity)] seconds (ring order, not time order)."""
        return self._ring[:min(self.count, self._ring.shape[0])]

    def summary(self) -> dict:
        """{"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"} (zeros when no samples)."""
        s = self.samples()
        if s.size == 0:
            return {"count": 0, "mean_ms": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        p50, p90, p99 = np.percentile(s, [50, 90, 99]) * 1000.0
        return {"count": self.count, "mean_ms": round(self.total / self.count * 1000.0, 3),
                "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3),
                "p99_ms": round(float(p99), 3), "max_ms": round(self.max * 1000.0, 3)}


class StreamStats:
    """Counters and stage timings of one run.

    decoded: frames read from the source; done: frames that went through every stage;
    dropped: frames replaced unseen in real-time mode; discarded: decoded frames skipped
    because the run was stopped. Stage timings are per frame (a batch's infer time is split
    evenly over its frames).
    """

    def __init__(self, capacity: int = 65536):
        self.stages = {name: StageTimes(capacity) for name in STAGES}
        self.decoded = 0
        self.done = 0
        self.dropped = 0
        self.discarded = 0
        self.started = time.perf_counter()
        self.finished: float | None = None
        self._last_done: float | None = None
        self._ema_interval: float | None = None
        self._lock = threading.Lock()  # several infer workers add at once

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.stages[stage].add(seconds)

    def frame_done(self, latency: float) -> None:
        """Record one finished frame and its end-to-end latency (seconds)."""
        now = time.perf_counter()
        self.done += 1
        self.stages["latency"].add(latency)
        if self._last_done is not None:
            dt = now - self._last_done
            self._ema_interval = dt if self._ema_interval is None else 0.9 * self._ema_interval + 0.1 * dt
        self._last_done = now

    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def fps(self) -> float:
        """Frames done per second of wall time since the start."""
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0

    def recent_fps(self) -> float:
        """Output rate over the last ~10 frames (exponential average); 0 before two frames."""
        return 1.0 / self._ema_interval if self._ema_interval else 0.0

    def summary(self) -> dict:
        """JSON-ready: counters, wall time, fps and each stage's summary (milliseconds)."""
        return {"frames": self.done, "decoded": self.decoded, "dropped": self.dropped,
                "discarded": self.discarded, "seconds": round(self.elapsed(), 3), "fps": round(self.fps(), 3),
                "stages": {name: t.summary() for name, t in self.stages.items()}}

    def format_table(self) -> str:
        """A small text table: one line per stage with samples, p50/p90/p99 in milliseconds."""
        lines = [f"{'stage':<12}{'frames':>8}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}"]
        for name, times in self.stages.items():
            s = times.summary()
            if s["count"]:
                lines.append(f"{name:<12}{s['count']:>8}{s['p50_ms']:>10.1f}{s['p90_ms']:>10.1f}{s['p99_ms']:>10.1f}")
        return "\n".join(lines)

    def write_json(self, path) -> None:
        """Write summary() to `path` (a path, or a claimed maskrt.safeio.Output) under a temporary
        name, renamed when complete."""
        from ...safeio import Output

        out = path if isinstance(path, Output) else Output(path, "stats")
        with out:
            out.open("w").write(json.dumps(self.summary(), indent=2) + "\n")
