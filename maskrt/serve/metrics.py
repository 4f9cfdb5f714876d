"""The service's figures, kept by the gateway replica and rendered in Prometheus' text format
(prometheus_client, which ships with Ray) for `GET /metrics`.

Requests: counted by route and status. Latency of `POST /v1/segment`, end to end inside the
gateway (body read to response), as a summary with quantiles 0.5 / 0.9 / 0.99, separately for
answered (200) and refused (4xx/503) requests. Per-stage times of answered requests: queue
(waiting at the replica for its batch to start), decode (image bytes to pixels), infer (the
backend's batch call, shared evenly by the batch's images), postprocess (mask paste + COCO RLE +
JSON record). Batch sizes as a histogram. Streams: fps, frames, drops, restarts, reconnects and
their per-stage p50/p99, as gauges per stream.

Quantiles come from maskrt.engine.stream.stats.StageTimes rings (the last 65,536 samples), so
memory stays bounded however long the service runs; counts and sums cover the whole run.
"""

from __future__ import annotations

import threading
from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..engine.stream.stats import StageTimes

REQUEST_STAGES = ("queue", "decode", "infer", "postprocess")
QUANTILES = (0.5, 0.9, 0.99)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _quantiles(times: StageTimes) -> dict[float, float]:
    """Seconds at QUANTILES over the ring; {} when empty."""
    s = times.summary()
    if not s["count"]:
        return {}
    return {0.5: s["p50_ms"] / 1e3, 0.9: s["p90_ms"] / 1e3, 0.99: s["p99_ms"] / 1e3}


def summary_family(name: str, doc: str, series: list[tuple[dict, StageTimes]]) -> Metric:
    """A Prometheus summary: NAME{labels, quantile} samples plus NAME_count and NAME_sum per series."""
    metric = Metric(name, doc, "summary")
    for labels, times in series:
        for q, value in _quantiles(times).items():
            metric.add_sample(name, {**labels, "quantile": str(q)}, value)
        metric.add_sample(name + "_count", labels, float(times.count))
        metric.add_sample(name + "_sum", labels, times.total)
    return metric


class ServiceMetrics:
    """Thread-safe counters and rings; `render()` -> Prometheus text (bytes)."""

    def __init__(self, max_batch: int):
        self.max_batch = max(1, int(max_batch))
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (route, status) -> count
        self.latency = {"answered": StageTimes(), "refused": StageTimes()}
        self.stages = {name: StageTimes() for name in REQUEST_STAGES}
        self.batch_sizes: Counter = Counter()
        self.in_flight = 0
        self.streams: list[dict] = []

    def request(self, route: str, status: int, seconds: float | None = None) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            if seconds is not None:
                self.latency["answered" if status == 200 else "refused"].add(seconds)

    def answered(self, timing: dict) -> None:
        """timing: the replica's {"batch", "queue_s", "decode_s", "infer_s", "postprocess_s"}."""
        with self._lock:
            for stage in REQUEST_STAGES:
                if f"{stage}_s" in timing:
                    self.stages[stage].add(timing[f"{stage}_s"])
            self.batch_sizes[int(timing.get("batch", 1))] += 1

    def summary(self) -> dict:
        """JSON-ready: requests by status, latency and stage summaries in milliseconds, batch sizes."""
        with self._lock:
            by_status = Counter()
            for (_, status), n in self.requests.items():
                by_status[str(status)] += n
            return {"requests": dict(by_status), "in_flight": self.in_flight,
                    "latency": {k: t.summary() for k, t in self.latency.items()},
                    "stages": {k: t.summary() for k, t in self.stages.items()},
                    "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}

    def collect(self):
        """prometheus_client collector protocol: yield the metric families."""
        with self._lock:
            requests = CounterMetricFamily("maskrt_requests", "HTTP requests by route and status",
                                           labels=["route", "status"])
            for (route, status), n in sorted(self.requests.items()):
                requests.add_metric([route, str(status)], n)
            yield requests
            yield summary_family("maskrt_request_latency_seconds", "POST /v1/segment latency in the gateway",
                                 [({"outcome": k}, t) for k, t in self.latency.items()])
            yield summary_family("maskrt_stage_seconds", "per-image stage times of answered requests",
                                 [({"stage": k}, t) for k, t in self.stages.items()])
            yield self._batch_histogram()
            yield GaugeMetricFamily("maskrt_in_flight", "segment requests waiting for a replica", value=self.in_flight)
            yield from stream_families(self.streams)

    def _batch_histogram(self) -> HistogramMetricFamily:
        buckets, running = [], 0
        for size in range(1, self.max_batch + 1):
            running += self.batch_sizes.get(size, 0)
            buckets.append((str(size), running))
        total = sum(self.batch_sizes.values())
        buckets.append(("+Inf", total))
        return HistogramMetricFamily("maskrt_batch_size", "images per backend call, one sample per image",
                                     buckets=buckets, sum_value=sum(k * v for k, v in self.batch_sizes.items()))

    def render(self, streams: list[dict]) -> bytes:
        """The Prometheus text exposition of everything, with `streams` (StreamWorker.stats() dicts)."""
        self.streams = streams
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry)


def stream_families(streams: list[dict]):
    """Gauges per stream from StreamWorker.stats() dicts (unreachable streams report up=0)."""
    gauges = {key: GaugeMetricFamily(f"maskrt_stream_{key}", doc, labels=["stream"]) for key, doc in (
        ("up", "1 while the stream's actor answers"), ("fps", "output frames per second (recent)"),
        ("frames", "frames segmented since the stream's actor (re)started"), ("dropped", "frames dropped in real time"),
        ("restarts", "times the stream's actor was restarted"), ("reconnects", "source reconnect attempts"))}
    stage = GaugeMetricFamily("maskrt_stream_stage_seconds", "per-frame stage time quantiles of each stream",
                              labels=["stream", "stage", "quantile"])
    for s in streams:
        up = s.get("state") not in (None, "unavailable")
        gauges["up"].add_metric([s["name"]], 1.0 if up else 0.0)
        for key in ("fps", "frames", "dropped", "restarts", "reconnects"):
            if key in s:
                gauges[key].add_metric([s["name"]], float(s[key]))
        for name, st in (s.get("stages") or {}).items():
            if st.get("count"):
                stage.add_metric([s["name"], name, "0.5"], st["p50_ms"] / 1e3)
                stage.add_metric([s["name"], name, "0.99"], st["p99_ms"] / 1e3)
    yield from gauges.values()
    yield stage
