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
from ..options import BACKENDS, Number
from .options import SCORE, SIZE, add_proposals
from .tracking import add_arguments as add_tracking_arguments
from .tracking import settings as tracking_settings


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
UNDEPLOY_S = 20.0  # the longest removing the application and stopping the streams may take (a cluster)
STREAMS_S = 5.0  # the longest stopping the streams may take before our own Ray is ended
_REPLICAS = Number(int, 1, 1024)
_SECONDS = Number(float, 0, 86_400, above=True)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="run maskrt as an HTTP service on Ray Serve (maskrt[ray])",
        description="Serve MODEL over HTTP: POST /v1/segment (a JPEG or PNG; ?score_threshold=) answers the JSON "
                    "line `maskrt run --json` writes, with category names; GET / shows the streams live; "
                    "GET /healthz, GET /metrics (Prometheus). Overload answers 503 at once.")
    p.add_argument("--model", required=True, help="engine directory, checkpoint or torchvision:NAME")
    p.add_argument("--ray", metavar="ADDRESS", help="deploy on this existing Ray cluster (e.g. auto, HOST:6379); "
                                                    "default: start a local Ray instance")
    p.add_argument("--replicas", type=_REPLICAS, default=1, help="model replicas (default 1)")
    p.add_argument("--max-replicas", type=_REPLICAS, help="autoscale between --replicas and this many replicas")
    p.add_argument("--max-batch", type=Number(int, 1, 256), default=4,
                   help="images batched into one inference call (default 4)")
    p.add_argument("--batch-wait-ms", type=Number(float, 0, 10_000), default=10.0,
                   help="longest wait for a batch to fill (default 10)")
    p.add_argument("--max-queued", type=Number(int, 1, 1_000_000),
                   help="requests allowed to wait for a replica before 503 (default 2 x max-batch x replicas)")
    p.add_argument("--replica-cpus", type=Number(float, 0, 1024, above=True), default=1.0,
                   help="CPUs (inference threads) per replica (default 1)")
    p.add_argument("--stream-cpus", type=Number(float, 0, 1024), default=1.0,
                   help="CPUs reserved per stream actor (default 1)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=Number(int, 1, 65535), default=8000, help="HTTP port (default 8000)")
    p.add_argument("--stream", action="append", default=[], metavar="NAME=SOURCE",
                   help="segment a stream live (repeatable): a webcam index, an rtsp/http URL, or a video file "
                        "(looped)")
    p.add_argument("--out-dir", type=Path, default=Path("runs/serve"),
                   help="where streams write NAME.jsonl (and MP4 segments) (default runs/serve)")
    p.add_argument("--segment-seconds", type=_SECONDS, help="also write each stream as MP4 segments of this length")
    add_tracking_arguments(p)  # --track etc.: ids in every stream's JSON lines and video
    p.add_argument("--reconnect-max-s", type=_SECONDS, default=30.0,
                   help="longest wait between reconnects of a stream (exponential backoff from 1 s; default 30)")
    p.add_argument("--max-upload-mb", type=Number(float, 0, 4096, above=True), default=20.0,
                   help="largest accepted upload (default 20 MB)")
    p.add_argument("--max-pixels", type=Number(int, 1, 1_000_000_000), default=40_000_000,
                   help="largest accepted image in pixels (default 40,000,000)")
    p.add_argument("--upload-timeout-s", type=_SECONDS, default=60.0,
                   help="an upload's body must arrive within this many seconds, else 408 (default 60)")
    p.add_argument("--max-client-requests", type=Number(int, 1, 100_000), default=16,
                   help="requests one client address may have in progress (uploads, feeds, pages); past that "
                        "429 at once (default 16)")
    p.add_argument("--score-threshold", type=SCORE, default=0.5,
                   help="keep detections above this (default 0.5); requests may ask for a higher one")
    p.add_argument("--min-size", type=SIZE, help="resize shorter side to this (default: the model's)")
    p.add_argument("--max-size", type=SIZE, help="cap on the longer side (default: the model's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--config", metavar="MODEL.yaml", help="detectron2 checkpoints: the model's detectron2 config")
    add_proposals(p, "RPN proposals per image (default: the engine's or checkpoint's own)")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    """ServeOptions for the parsed flags; MaskrtError for values that cannot work."""
    from ..serve.app import ServeOptions
    from ..serve.model import ModelSpec
    from ..serve.streams import parse_stream
    from .options import load_options

    if args.max_replicas is not None and args.max_replicas < args.replicas:
        raise MaskrtError(f"--max-replicas ({args.max_replicas}) is below --replicas ({args.replicas})")
    backoff = min(1.0, args.reconnect_max_s)
    tracking = tracking_settings(args)
    if tracking is not None and not args.stream:
        raise MaskrtError("--track applies to the streams: add --stream NAME=SOURCE")
    streams = [parse_stream(s, str(args.out_dir), segment_seconds=args.segment_seconds, restart_backoff_s=backoff,
                            max_restart_backoff_s=args.reconnect_max_s, tracking=tracking,
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
                        max_pixels=args.max_pixels, upload_timeout_s=args.upload_timeout_s,
                        max_client_requests=args.max_client_requests)


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
    """Serve until SIGINT, SIGTERM or SIGHUP (exit 0), also when the signal reaches the whole
    process group (see maskrt.local_ray); a signal while Ray starts or the service deploys stops
    everything started so far (exit 130)."""
    try:
        import ray  # noqa: F401 - only to say so in one line when it is missing
    except ImportError:
        raise MaskrtError("maskrt serve needs Ray: pip install 'maskrt[ray]'") from None
    if args.ray is None:
        _check_port(args.host, args.port)
    options = options_from_args(args)
    from ..serve.app import deploy

    needed = options.replicas * options.replica_cpus + len(options.streams) * options.stream_cpus
    local = _local_ray(needed) if args.ray is None else None
    handles: dict = {}
    try:
        if local is not None:
            _say("starting Ray on this machine")
            local.start()
        else:
            _join(args.ray, needed)
        _say(f"deploying {options.replicas} replica(s) and {len(options.streams)} stream(s)")
        deploy(options, handles=handles)
        _say(f"serving {args.model} at {_served_url(args.host, args.port)} ({options.replicas} replica(s), batches "
             f"up to {options.max_batch}, {len(options.streams)} stream(s)); Ctrl-C stops")
        _wait_for_signal()
    finally:
        _say("stopping the service")
        _stop(local, handles)
    return 0


def _say(message: str) -> None:
    print(f"maskrt: {message}", file=sys.stderr, flush=True)


def _local_ray(needed: float):
    """Our own Ray instance (never a cluster that happens to run on this machine), with logical
    CPUs for every replica and stream even on a small machine (they then share its cores)."""
    import os

    from ..local_ray import LocalRay

    return LocalRay(num_cpus=max(os.cpu_count() or 1, math.ceil(needed)), include_dashboard=False,
                    log_to_driver=False, configure_logging=False)


def _stop(local, handles: dict) -> None:
    """On a cluster: remove the application and stop the streams (within UNDEPLOY_S). With our
    own Ray: stop the streams (their outputs closed) while Ray can still be asked, then end Ray
    and every process it started (maskrt.local_ray) and leave at once, saying what main() would
    have said (the Ray client here is left connected to nothing); the application goes with
    them (asking Serve to delete it hangs when a signal reached Ray's own processes too)."""
    import ray

    from ..local_ray import leave_as_main_would, within
    from ..serve.app import undeploy
    from ..serve.streams import stop_streams

    if local is None:
        if not within(UNDEPLOY_S, undeploy, handles):
            _say(f"warning: the application was not removed within {UNDEPLOY_S:.0f} s")
        within(UNDEPLOY_S, ray.shutdown)
        return
    if handles and ray.is_initialized() and local.usable():
        within(STREAMS_S, stop_streams, handles, STREAMS_S)
    local.stop(graceful=False)
    leave_as_main_would()


def _join(address: str, needed: float) -> None:
    """ray.init on the cluster at `address`, warning when its CPUs cannot hold every replica and
    stream (they would wait to be scheduled until an autoscaler adds nodes, and seem to hang)."""
    import ray

    from ..local_ray import our_signal_handlers

    with our_signal_handlers():
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    total = ray.cluster_resources().get("CPU", 0.0)
    if total < needed:
        _say(f"warning: the replicas and streams need {needed:g} CPUs, the cluster has {total:g}; some wait until "
             "more nodes join")


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
    """Return on SIGINT, SIGTERM or SIGHUP."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
