"""A load generator for a running `maskrt serve`: N concurrent clients POST one image, each
waiting for its answer before sending the next (closed loop), for a number of requests or seconds.

    python -m maskrt.serve.loadgen http://127.0.0.1:8000 IMAGE.png --clients 32 --requests 4

Prints a JSON summary: answers by status, latency p50/p90/p99/max of the 200s and of the 503s
(milliseconds, numpy linear-interpolated percentiles), throughput (200s per second of wall
time) and `hung`: requests with no answer within the client timeout (status 0).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Answer:
    """One request: HTTP status (0: no answer within the timeout, or the connection failed),
    start (seconds since the load began), seconds (latency), reason (the body's "error")."""

    status: int
    start: float
    seconds: float
    reason: str = ""


def run_load(url: str, body: bytes, content_type: str = "image/png", *, clients: int = 8,
             requests_per_client: int | None = None, duration_s: float | None = None,
             timeout_s: float = 60.0, params: dict | None = None,
             source: str | None = None) -> tuple[list[Answer], float]:
    """(answers in completion order, wall seconds). Stops each client after requests_per_client
    requests or duration_s seconds, whichever is given (both: the first reached). source: the
    local address the clients connect from (e.g. 127.0.0.2: another client than 127.0.0.1)."""
    import requests

    if requests_per_client is None and duration_s is None:
        raise ValueError("give requests_per_client or duration_s")
    endpoint = url.rstrip("/") + "/v1/segment"
    answers: list[Answer] = []
    lock = threading.Lock()
    t0 = time.perf_counter()

    def client() -> None:
        session = client_session(source)
        n = 0
        while (requests_per_client is None or n < requests_per_client) and \
                (duration_s is None or time.perf_counter() - t0 < duration_s):
            start = time.perf_counter()
            try:
                r = session.post(endpoint, data=body, headers={"Content-Type": content_type}, params=params,
                                 timeout=timeout_s)
                status, reason = r.status_code, _reason(r)
            except requests.RequestException as exc:
                status, reason = 0, type(exc).__name__
            with lock:
                answers.append(Answer(status, start - t0, time.perf_counter() - start, reason))
            n += 1
        session.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, time.perf_counter() - t0


def client_session(source: str | None = None):
    """A requests.Session, its connections made from `source` when given."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    if source:
        class FromSource(HTTPAdapter):
            def init_poolmanager(self, *args, **kwargs):
                super().init_poolmanager(*args, source_address=(source, 0), **kwargs)

        session.mount("http://", FromSource())
    return session


def _reason(response) -> str:
    if response.status_code == 200:
        return ""
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return response.text[:200]


def _ms(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99]) * 1000.0
    return {"count": len(values), "p50_ms": round(float(p50), 1), "p90_ms": round(float(p90), 1),
            "p99_ms": round(float(p99), 1), "max_ms": round(max(values) * 1000.0, 1)}


def summarize(answers: list[Answer], wall_s: float) -> dict:
    """JSON-ready figures of one load run (see the module docstring)."""
    by_status = Counter(a.status for a in answers)
    ok = [a.seconds for a in answers if a.status == 200]
    return {"requests": len(answers), "by_status": {str(k): v for k, v in sorted(by_status.items())},
            "wall_s": round(wall_s, 2), "throughput_per_s": round(len(ok) / wall_s, 2) if wall_s > 0 else 0.0,
            "latency_200": _ms(ok), "latency_503": _ms([a.seconds for a in answers if a.status == 503]),
            "hung": by_status.get(0, 0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m maskrt.serve.loadgen", description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("image", type=Path, help="a JPEG or PNG to send")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, help="requests per client")
    p.add_argument("--seconds", type=float, help="run for this long instead")
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout per request (s)")
    args = p.parse_args(argv)
    kind = "image/png" if args.image.suffix.lower() == ".png" else "image/jpeg"
    answers, wall = run_load(args.url, args.image.read_bytes(), kind, clients=args.clients,
                             requests_per_client=args.requests, duration_s=args.seconds, timeout_s=args.timeout)
    print(json.dumps(summarize(answers, wall), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
