"""One hostile address against the service of conftest.py (uploads due within 5 s, at most
MAX_CLIENT_REQUESTS requests in progress per address): stalled uploads and bodies of many tiny
parts (maskrt.serve.hostile) take nothing from other clients, and /healthz answers within a
second throughout (issue 22, items 1 and 2). The hostile connections come from 127.0.0.7 and
127.0.0.8, the other clients from 127.0.0.1."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from maskrt.serve.hostile import run_hostile
from maskrt.serve.loadgen import client_session

from .conftest import MAX_CLIENT_REQUESTS, wait_for
from .test_service import picture  # noqa: F401 - the module fixture

UPLOAD_TIMEOUT_S = 5.0


def answered(service, route: str, status: int) -> float:
    """How many requests /metrics counts for (route, status) so far (route "*": refused by the
    per-client bound before any route)."""
    for family in text_string_to_metric_families(service.get("/metrics").text):
        if family.name == "maskrt_requests":
            return sum(s.value for s in family.samples if s.labels == {"route": route, "status": str(status)})
    return 0.0


def in_background(**kwargs) -> tuple[threading.Thread, dict]:
    out = {}
    thread = threading.Thread(target=lambda: out.update(run_hostile(**kwargs)), daemon=True)
    thread.start()
    return thread, out


def healthz_seconds(service, times: int = 5, source: str | None = None) -> list[float]:
    """Latencies of `times` GET /healthz (each must be 200), from `source` when given."""
    took = []
    with client_session(source) as session:
        for _ in range(times):
            t0 = time.perf_counter()
            assert session.get(service.url + "/healthz", timeout=10).status_code == 200
            took.append(time.perf_counter() - t0)
    return took


@pytest.mark.slow
def test_stalled_uploads_from_one_address_take_nothing_from_others(service, picture):  # noqa: F811
    """60 uploads that send their headers and 3 bytes: MAX_CLIENT_REQUESTS are held until the
    upload deadline (408), the others are refused at once (429) and try again; meanwhile another
    client's images are answered and /healthz answers within a second."""
    before = answered(service, "*", 429)
    hostile_s = 2 * UPLOAD_TIMEOUT_S + 2
    thread, report = in_background(url=service.url, connections=MAX_CLIENT_REQUESTS + 20, seconds=hostile_s,
                                   source="127.0.0.7", mix={"body": 1.0})
    wait_for(lambda: answered(service, "*", 429) > before, timeout_s=30, what="the per-client bound to refuse")
    png = (picture / "scene.png").read_bytes()
    t0 = time.perf_counter()
    reply = service.post("/v1/segment", data=png, headers={"Content-Type": "image/png"}, timeout=60)
    assert reply.status_code == 200, reply.text
    took = healthz_seconds(service) + healthz_seconds(service, source="127.0.0.7")  # exempt from the bound
    assert max(took) < 1.0, took
    print(f"while held: an image answered in {time.perf_counter() - t0:.2f} s, /healthz max {max(took):.3f} s")
    thread.join(timeout=hostile_s + 30)
    statuses = report["body"]["statuses"]
    # each held upload ends with 408 after the deadline (at least two rounds of MAX_CLIENT_REQUESTS
    # in hostile_s), every other attempt with 429; nothing else
    assert set(statuses) <= {"408", "429"} and statuses.get("408", 0) >= MAX_CLIENT_REQUESTS, report
    assert statuses.get("429", 0) >= 20, report


def test_bodies_of_many_parts_are_refused_without_stalling_other_routes(service):
    """Bodies of ~20,000 one-byte parts (the 1 MB upload limit) sent again and again by 4
    connections: each is 413 once its 17th part is seen (the old MIME parser spent seconds on the
    event loop for one such body), and /healthz answers within a second."""
    before = answered(service, "/v1/segment", 413)
    thread, report = in_background(url=service.url, connections=4, seconds=6.0, source="127.0.0.8",
                                   mix={"parts": 1.0}, body_bytes=1024 * 1024 - 256)
    wait_for(lambda: answered(service, "/v1/segment", 413) >= before + 4, timeout_s=30, what="the bodies to flow")
    took = healthz_seconds(service)
    assert max(took) < 1.0, took
    thread.join(timeout=60)
    statuses = report["parts"]["statuses"]
    assert set(statuses) == {"413"} and statuses["413"] >= 4, report
