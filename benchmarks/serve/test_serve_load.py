"""`maskrt serve` under load: closed-loop clients POST a 240x320 shapes scene (PNG) to a local
Ray Serve deployment of the bundled model (native 320 px): 2 replicas of 1 CPU each, batches of
up to 4 (so 8 requests in hand per replica, 16 in all) and 8 more queued at the gateway at most.

Group "serve 240x320" (one round each: the time is the round's wall time, warm-up included,
and there is no baseline; the figures that matter are in extra_info): `within_capacity` (4 clients: nothing refused; the service's own
latency), `overload` (48 clients, twice the 24 requests the service admits: the excess is
answered 503 at once). extra_info: answers by status, p50/p99 of the 200s and of the 503s
(ms), throughput (200s per second), hung requests (no answer within 60 s; must be 0).
Starting Ray and the deployment takes about a minute before the first round.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

import maskrt
from maskrt.options import LoadOptions
from maskrt.data import iter_video_frames
from maskrt.serve.loadgen import run_load, summarize

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
SECONDS = float(os.environ.get("MASKRT_BENCH_SERVE_SECONDS", "30"))
REPLICAS, MAX_BATCH, MAX_QUEUED = 2, 4, 8


@pytest.fixture(scope="module")
def service():
    import ray

    from maskrt.api import cached_cpu_engine
    from maskrt.serve.app import ServeOptions, deploy, undeploy
    from maskrt.serve.model import ModelSpec

    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    engine = str(cached_cpu_engine(str(BUNDLED), progress=False))
    ray.init(address="local", num_cpus=REPLICAS + 1, include_dashboard=False, log_to_driver=False)
    port = _free_port()
    options = ServeOptions(model=ModelSpec(str(BUNDLED), engine=engine, load=LoadOptions(num_threads=1, score_threshold=0.5)), replicas=REPLICAS,
                           max_batch=MAX_BATCH, max_queued=MAX_QUEUED, port=port)
    handles = deploy(options)
    yield f"http://127.0.0.1:{port}"
    undeploy(handles)
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scene_png() -> bytes:
    _, scene = next(iter(iter_video_frames(1, size=(240, 320), seed=11)))
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG")
    return buffer.getvalue()


def load_round(benchmark, service, body, clients):
    result = {}

    def run():
        run_load(service, body, clients=4, requests_per_client=2, timeout_s=60)  # warm-up (new shapes compile)
        answers, wall = run_load(service, body, clients=clients, duration_s=SECONDS, timeout_s=60)
        result.update(summarize(answers, wall))

    benchmark.group = "serve 240x320"
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    ok, refused = result["latency_200"], result["latency_503"]
    info = {"clients": clients, "replicas": REPLICAS, "max_batch": MAX_BATCH, "max_queued": MAX_QUEUED,
            "answers": result["requests"], "n200": result["by_status"].get("200", 0),
            "n503": result["by_status"].get("503", 0), "hung": result["hung"],
            "throughput_per_s": result["throughput_per_s"],
            "p50_ms_200": ok.get("p50_ms"), "p99_ms_200": ok.get("p99_ms"),
            "p50_ms_503": refused.get("p50_ms"), "p99_ms_503": refused.get("p99_ms")}
    benchmark.extra_info.update({k: v for k, v in info.items() if v is not None})
    assert result["hung"] == 0 and set(result["by_status"]) <= {"200", "503"}, result
    return result


def test_within_capacity(benchmark, service, scene_png):
    result = load_round(benchmark, service, scene_png, clients=4)
    assert result["by_status"].get("503", 0) == 0, result


def test_overload(benchmark, service, scene_png):
    result = load_round(benchmark, service, scene_png, clients=48)
    assert result["by_status"].get("503", 0) > 0, result
