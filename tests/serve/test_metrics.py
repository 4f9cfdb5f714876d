"""GET /metrics text, read back with prometheus_client's own parser; quantiles against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from maskrt.serve.metrics import ServiceMetrics


def samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_requests_latency_batches_and_streams(rng):
    m = ServiceMetrics(max_batch=4)
    latencies = rng.uniform(0.01, 0.5, size=200)
    for t in latencies:
        m.request("/v1/segment", 200, float(t))
    for _ in range(7):
        m.request("/v1/segment", 503, 0.002)
    m.request("/healthz", 200)
    for size in [1, 1, 2, 4, 4, 4]:
        m.answered({"batch": size, "queue_s": 0.01, "infer_s": 0.1, "postprocess_s": 0.02, "decode_s": 0.001})
    stream = {"name": "cam", "state": "running", "fps": 7.5, "frames": 120, "dropped": 30, "restarts": 1,
              "reconnects": 2, "stages": {"infer": {"count": 5, "p50_ms": 100.0, "p99_ms": 250.0}}}
    got = samples(m.render([stream, {"name": "gone", "state": "unavailable"}]).decode())

    assert got[("maskrt_requests_total", frozenset({("route", "/v1/segment"), ("status", "200")}))] == 200
    assert got[("maskrt_requests_total", frozenset({("route", "/v1/segment"), ("status", "503")}))] == 7
    assert got[("maskrt_requests_total", frozenset({("route", "/healthz"), ("status", "200")}))] == 1
    answered = frozenset({("outcome", "answered")})
    assert got[("maskrt_request_latency_seconds_count", answered)] == 200
    assert got[("maskrt_request_latency_seconds_sum", answered)] == pytest.approx(latencies.sum(), rel=1e-12)
    for q in (0.5, 0.9, 0.99):
        expected = np.percentile(latencies, q * 100)
        # the summary carries milliseconds rounded to 3 decimals, converted back: within 0.5 us
        assert got[("maskrt_request_latency_seconds", answered | {("quantile", str(q))})] == \
            pytest.approx(expected, abs=5e-7)
    assert got[("maskrt_request_latency_seconds_count", frozenset({("outcome", "refused")}))] == 7
    assert got[("maskrt_stage_seconds_count", frozenset({("stage", "infer")}))] == 6
    buckets = {le: got[("maskrt_batch_size_bucket", frozenset({("le", le)}))] for le in ("1", "2", "3", "4", "+Inf")}
    assert buckets == {"1": 2, "2": 3, "3": 3, "4": 6, "+Inf": 6}  # cumulative
    assert got[("maskrt_batch_size_sum", frozenset())] == 16
    cam = frozenset({("stream", "cam")})
    assert got[("maskrt_stream_up", cam)] == 1 and got[("maskrt_stream_up", frozenset({("stream", "gone")}))] == 0
    assert got[("maskrt_stream_fps", cam)] == 7.5 and got[("maskrt_stream_dropped", cam)] == 30
    assert got[("maskrt_stream_stage_seconds", cam | {("stage", "infer"), ("quantile", "0.99")})] == 0.25
    summary = m.summary()
    assert summary["requests"] == {"200": 201, "503": 7} and summary["batch_sizes"] == {"1": 2, "2": 1, "4": 3}
