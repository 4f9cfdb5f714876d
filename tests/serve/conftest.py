"""One simulated two-node Ray cluster and one `maskrt serve` for the whole serve test session.

The service is started the way a user starts it on an existing cluster: `maskrt serve --ray
ADDRESS ...` in a subprocess, with two model replicas (batches of 2, a queue of 8 at the
gateway), the bundled model at 128 px, and two streams: `loop` (a 96x128 clip looped) and `net`
(the same clip as MPEG-TS from a local HTTP server the tests stop and start again). At the end
the command gets SIGTERM and must exit 0, leaving neither the application nor the stream actors.

Every wait is bounded (WAIT_S) and pytest-timeout bounds every test.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import maskrt
from maskrt.data import generate_video, iter_video_frames

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
SIZE = (96, 128)
FPS = 10
WAIT_S = 240.0
MAX_CLIENT_REQUESTS = 40  # above the 32 clients of the overload test, which all come from 127.0.0.1
SERVE_ARGS = ["--min-size", "128", "--max-size", "128", "--replicas", "2", "--max-batch", "2", "--max-queued", "8",
              "--replica-cpus", "1", "--reconnect-max-s", "2", "--max-upload-mb", "1", "--max-pixels", "1000000",
              "--upload-timeout-s", "5", "--max-client-requests", str(MAX_CLIENT_REQUESTS)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float = WAIT_S, what: str = "condition", interval_s: float = 0.25):
    """predicate()'s first truthy value; AssertionError after timeout_s (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last!r})")


def write_ts(path: Path, num_frames: int = 20, seed: int = 4) -> Path:
    """The shapes clip as H.264 in MPEG-TS (streamable over plain HTTP, no seeking needed)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        for i, (_, scene) in enumerate(iter_video_frames(num_frames, fps=FPS, size=SIZE, seed=seed)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene.image), format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


class VideoServer:
    """Serves `data` at /clip.ts, paced to last `seconds`; stop() makes the source disappear (the
    listening socket and every open connection closed), start() brings it back on the same port."""

    def __init__(self, data: bytes, seconds: float):
        self.data, self.seconds = data, seconds
        self.port = free_port()
        self._closing = threading.Event()
        self._server = None

    def start(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                chunk = max(1, len(owner.data) // 20)
                for i in range(0, len(owner.data), chunk):
                    if owner._closing.wait(owner.seconds / 20):
                        return
                    try:
                        self.wfile.write(owner.data[i:i + chunk])
                    except OSError:
                        return

            def log_message(self, *args):
                pass

        self._closing.clear()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/clip.ts"


@pytest.fixture(scope="package")
def ray_cluster(engine_cache):
    """A head node and a worker node (ray.cluster_utils.Cluster), 3 logical CPUs each; this
    process is connected to it while tests/serve runs (package scope: disconnected before another
    folder's tests start their own Ray, in whatever order they run). Workers import maskrt from this tree."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False})
    cluster.add_node(num_cpus=3)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@dataclass
class Service:
    url: str
    out_dir: Path
    clip: Path
    net: VideoServer
    process: subprocess.Popen
    log: Path

    def get(self, path: str, **kwargs):
        return requests.get(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, path: str, **kwargs):
        return requests.post(self.url + path, timeout=kwargs.pop("timeout", 60), **kwargs)

    def stream(self, name: str) -> dict:
        return next(s for s in self.get("/v1/streams").json() if s["name"] == name)

    def jsonl(self, name: str) -> list[dict]:
        """Every complete line of the stream's JSON lines (a line being written may be partial)."""
        text = (self.out_dir / f"{name}.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


@pytest.fixture(scope="package")
def service(ray_cluster, tmp_path_factory):
    from maskrt.api import cached_cpu_engine

    work = tmp_path_factory.mktemp("serve")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the engine builds while the clips are made
        engine = pool.submit(cached_cpu_engine, str(BUNDLED), progress=False)
        clip = generate_video(work / "clip.mp4", num_frames=10, fps=FPS, size=SIZE, seed=4)
        net = VideoServer(write_ts(work / "clip.ts").read_bytes(), seconds=20 / FPS)
        engine.result()
    net.start()
    port, out_dir, log = free_port(), work / "out", work / "serve.log"
    cmd = [sys.executable, "-m", "maskrt.cli", "serve", "--ray", ray_cluster.address, "--model", str(BUNDLED),
           "--port", str(port), "--out-dir", str(out_dir), "--stream", f"loop={clip}", "--stream", f"net={net.url}",
           *SERVE_ARGS]
    with open(log, "w") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=work)
    svc = Service(f"http://127.0.0.1:{port}", out_dir, clip, net, process, log)
    try:
        wait_for(lambda: process.poll() is not None or "maskrt: serving" in log.read_text(), what="maskrt serve")
        assert process.poll() is None, f"maskrt serve exited: {log.read_text()[-2000:]}"
        wait_for(lambda: all(s["state"] == "running" and s["frames"] > 0 for s in svc.get("/v1/streams").json()),
                 what="both streams running")
        # ready: /healthz has read the replicas' states once (its first reading waits at most 0.5 s
        # for Serve's controller, which a loaded machine can take longer to answer: 503 until then)
        wait_for(lambda: svc.get("/healthz").status_code == 200, what="/healthz to answer 200")
        yield svc
    finally:
        stopped = _stop(process)
        net.stop()
    assert stopped == 0, f"maskrt serve exit status {stopped}: {log.read_text()[-2000:]}"
    _assert_cleaned_up()


def _stop(process: subprocess.Popen) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        return None


def _assert_cleaned_up() -> None:
    import ray
    from ray import serve

    assert "maskrt" not in serve.status().applications
    for name in ("loop", "net"):
        with pytest.raises(ValueError):
            ray.get_actor(f"maskrt-stream-{name}", namespace="maskrt")
