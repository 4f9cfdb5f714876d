"""`maskrt serve --model MODEL ...`: maskrt as an HTTP service on Ray Serve, with optional streams.

Locally (no --ray) a Ray instance is started for the service and stopped with it; with --ray
ADDRESS (e.g. `auto`, `10.0.0.5:6379`) the service is deployed on that existing cluster and
removed from it on exit (Ctrl-C or SIGTERM). A checkpoint is compiled once here into the CPU
engine, whose directory the replicas load when it is on their node's disk (shared storage);
otherwise each node builds its own from MODEL, which must then be readable there.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from pathlib import Path

from ..errors import MaskrtError
from ..options import BACKENDS
from .options import add_proposals


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="run maskrt as an HTTP service on Ray Serve (maskrt[ray])",
        description="Serve MODEL over HTTP: POST /v1/segment (a JPEG or PNG; ?score_threshold=) answers the JSON "
                    "line `maskrt run --json` writes, with category names; GET / shows the streams live; "
                    "GET /healthz, GET /metrics (Prometheus). Overload answers 503 at once.")
    p.add_argument("--model", required=True, help="engine directory, checkpoint or torchvision:NAME")
    p.add_argument("--ray", metavar="ADDRESS", help="deploy on this existing Ray cluster (e.g. auto, HOST:6379); "
                                                    "default: start a local Ray instance")
    p.add_argument("--replicas", type=int, default=1, help="model replicas (default 1)")
    p.add_argument("--max-replicas", type=int, help="autoscale between --replicas and this many replicas")
    p.add_argument("--max-batch", type=int, default=4, help="images batched into one inference call (default 4)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0, help="longest wait for a batch to fill (default 10)")
    p.add_argument("--max-queued", type=int,
                   help="requests allowed to wait for a replica before 503 (default 2 x max-batch x replicas)")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs (inference threads) per replica (default 1)")
    p.add_argument("--stream-cpus", type=float, default=1.0, help="CPUs reserved per stream actor (default 1)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--stream", action="append", default=[], metavar="NAME=SOURCE",
                   help="segment a stream live (repeatable): a webcam index, an rtsp/http URL, or a video file "
                        "(looped)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/serve"),
                   help="where streams write NAME.jsonl (and MP4 segments) (default runs/serve)")
    p.add_argument("--segment-seconds", type=float, help="also write each stream as MP4 segments of this length")
    p.add_argument("--reconnect-max-s", type=float, default=30.0,
                   help="longest wait between reconnects of a stream (exponential backoff from 1 s; default 30)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest accepted upload (default 20 MB)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest accepted image in pixels (default 40,000,000)")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="keep detections above this (default 0.5); requests may ask for a higher one")
    p.add_argument("--min-size", type=int, help="resize shorter side to this (default: the model's)")
    p.add_argument("--max-size", type=int, help="cap on the longer side (default: the model's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_proposals(p, "RPN proposals per image (default: the engine's or checkpoint's own)")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    """ServeOptions for the parsed flags; MaskrtError for values that cannot work."""
    from ..serve.app import ServeOptions
    from ..serve.model import ModelSpec
    from ..serve.streams import parse_stream
    from .options import load_options

    for flag, value, low in (("--replicas", args.replicas, 1), ("--max-batch", args.max_batch, 1),
                             ("--port", args.port, 1), ("--replica-cpus", args.replica_cpus, 0.01),
                             ("--stream-cpus", args.stream_cpus, 0.0)):
        if value < low:
            raise MaskrtError(f"{flag} must be at least {low}, got {value}")
    if args.max_replicas is not None and args.max_replicas < args.replicas:
        raise MaskrtError(f"--max-replicas ({args.max_replicas}) is below --replicas ({args.replicas})")
    if not 0.0 <= args.score_threshold <= 1.0:
        raise MaskrtError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    if args.reconnect_max_s <= 0 or args.max_upload_mb <= 0 or args.max_pixels < 1:
        raise MaskrtError("--reconnect-max-s, --max-upload-mb and --max-pixels must be positive")
    backoff = min(1.0, args.reconnect_max_s)
    streams = [parse_stream(s, str(args.out_dir), segment_seconds=args.segment_seconds, restart_backoff_s=backoff,
                            max_restart_backoff_s=args.reconnect_max_s,
                            url_options={"backoff_s": backoff, "max_backoff_s": args.reconnect_max_s})
               for s in args.stream]
    if len({s.name for s in streams}) < len(streams):
        raise MaskrtError("two --stream options have the same name")
    model = ModelSpec(str(args.model), engine=_engine(args),
                      load=load_options(args, num_threads=max(1, int(args.replica_cpus))))
    return ServeOptions(model=model, replicas=args.replicas, max_replicas=args.max_replicas,
                        max_batch=args.max_batch, batch_wait_s=args.batch_wait_ms / 1000.0,
                        max_queued=args.max_queued, replica_cpus=args.replica_cpus, stream_cpus=args.stream_cpus,
                        host=args.host,
                        port=args.port, streams=streams, max_bytes=int(args.max_upload_mb * 1024 * 1024),
                        max_pixels=args.max_pixels)


def _engine(args: argparse.Namespace) -> str | None:
    """The CPU engine directory for a checkpoint (built now if not cached), so replicas do not each
    build it; None when replicas load MODEL as it is (engines, torch backend, GPUs)."""
    from ..api import cached_cpu_engine
    from ..artifact import is_engine_dir

    if is_engine_dir(args.model):
        from ..artifact import read_manifest

        read_manifest(Path(args.model))  # a damaged engine: one line now, not a failed deployment later
        return None
    if args.backend not in ("auto", "openvino") or args.device != "cpu":
        return None
    return str(cached_cpu_engine(args.model, progress=not getattr(args, "quiet", False)))


def run(args: argparse.Namespace) -> int:
    try:
        import ray
    except ImportError:
        raise MaskrtError("maskrt serve needs Ray: pip install 'maskrt[ray]'") from None
    if args.ray is None:
        _check_port(args.host, args.port)
    options = options_from_args(args)
    from ..serve.app import deploy, undeploy

    _connect(args.ray, options.replicas * options.replica_cpus + len(options.streams) * options.stream_cpus)
    handles = {}
    try:
        handles = deploy(options)
        url = _served_url(args.host, args.port)
        print(f"maskrt: serving {args.model} at {url} ({options.replicas} replica(s), batches up to "
              f"{options.max_batch}, {len(options.streams)} stream(s)); Ctrl-C stops", file=sys.stderr, flush=True)
        _wait_for_signal()
    finally:
        print("maskrt: stopping the service", file=sys.stderr, flush=True)
        try:
            undeploy(handles)
        finally:
            if args.ray is None:
                ray.shutdown()
    return 0


def _connect(address: str | None, needed: float) -> None:
    """ray.init: a new local instance of our own (never a cluster that happens to run on this
    machine) with logical CPUs for every replica and stream even on a small machine (they then
    share its cores); or the cluster at `address`, warning when its CPUs cannot hold them all
    (they would wait to be scheduled until an autoscaler adds nodes, and seem to hang)."""
    import os

    import ray

    if address is None:
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, math.ceil(needed)), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        return
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    total = ray.cluster_resources().get("CPU", 0.0)
    if total < needed:
        print(f"maskrt: warning: the replicas and streams need {needed:g} CPUs, the cluster has {total:g}; "
              "some wait until more nodes join", file=sys.stderr, flush=True)


def _served_url(host: str, port: int) -> str:
    """Where Serve's proxies listen: on a cluster where Serve already ran, its HTTP options stay
    (serve.start cannot change them), so they are read back from the running controller."""
    try:
        from ray.serve.context import _get_global_client  # private, but the only way to read them back

        config = _get_global_client().http_config
        host, port = config.host or host, config.port or port
    except Exception:  # noqa: BLE001 - fall back to what was asked for
        pass
    return f"http://{host}:{port}/"


def _check_port(host: str, port: int) -> None:
    """MaskrtError when host:port cannot be bound here (in use, or not this machine's address)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise MaskrtError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
