"""A model replica killed (SIGKILL) while requests are in flight: at most the requests it held
fail (503, "retry"), the service keeps answering from the other replica, and Serve has a
replacement running within a bounded, reported time."""

from __future__ import annotations

import io
import os
import signal
import threading
import time

import pytest
from PIL import Image

from maskrt.data import iter_video_frames
from maskrt.serve.loadgen import run_load

from .conftest import SIZE, wait_for

pytestmark = pytest.mark.slow  # ~30 s of load and a replacement replica: make test-slow

HELD_PER_REPLICA = 4  # max_ongoing_requests = 2 x --max-batch 2


def replica_pids() -> list[int]:
    """Model replica processes (Ray titles actor processes ray::CLASS; the simulated cluster's
    nodes all run on this machine). Ray's state API would need the dashboard, which is off."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "ray::ServeReplica:maskrt:Segmenter" in cmdline:
            pids.append(proc.pid)
    return pids


def running_replicas(service) -> int:
    return service.get("/healthz").json()["replicas"].get("RUNNING", 0)


def test_replica_killed_mid_request(service):
    original = set(wait_for(lambda: len(pids := replica_pids()) == 2 and running_replicas(service) == 2 and pids,
                            what="two replicas"))
    _, scene = next(iter(iter_video_frames(1, size=SIZE, seed=11)))
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG")
    result = {}

    def load():  # 6 clients in a closed loop: both replicas stay busy, the queue stays short
        result["answers"], result["wall"] = run_load(service.url, buffer.getvalue(), clients=6, duration_s=25,
                                                     timeout_s=60)

    thread = threading.Thread(target=load)
    started = time.perf_counter()
    thread.start()
    time.sleep(6.0)
    victim = replica_pids()[0]
    os.kill(victim, signal.SIGKILL)
    killed = time.perf_counter() - started
    back = wait_for(lambda: set(replica_pids()) - original and running_replicas(service) == 2 and time.perf_counter(),
                    timeout_s=120, what="a replacement replica")
    thread.join(timeout=120)
    assert not thread.is_alive()
    answers = result["answers"]
    failed = [a for a in answers if a.status == 503 and "replica" in a.reason]
    other = {a.status for a in answers if a not in failed}
    assert other <= {200, 503} and all(a.status != 0 for a in answers)
    assert len(failed) <= HELD_PER_REPLICA, [a.reason for a in failed]
    after = sorted(a.start + a.seconds for a in answers if a.status == 200 and a.start > killed)
    assert after, "no request sent after the kill was answered"
    answering_again = after[0] - killed
    replaced = back - started - killed
    print(f"replica kill: {len(failed)} failed request(s) of {len(answers)}; answered again "
          f"{answering_again:.2f} s after the kill; replacement running after {replaced:.1f} s")
    assert replaced < 120
