"""The Ray Serve application: a Gateway (FastAPI ingress) in front of a Segmenter deployment
(the model, batched), plus one supervised actor per stream.

Serve options, and why:
- Segmenter: num_replicas N, or autoscaling between N and max_replicas with
  target_ongoing_requests = max_batch (one batch in hand per replica); max_ongoing_requests =
  2 x max_batch (a batch running and the next one filling); max_queued_requests: the bound on
  requests waiting at the gateway for a free replica, past which Serve raises BackPressureError
  at once (-> 503); health_check_period_s 2 and check_health (model.py) so a dead or wedged
  replica is replaced within seconds; num_cpus per replica = inference threads;
  max_constructor_retry_count 3, so a model that cannot load fails the deployment quickly.
- Gateway: one replica (it only checks, decodes and forwards; the figures of /metrics live in
  it); max_ongoing_requests large, since MJPEG feeds stay open, with a bounded queue in front;
  one client address holds at most max_client_requests of them (guard.py: 429 past that) and an
  upload's body must arrive within upload_timeout_s (408), so slow or stalled uploads from one
  address cannot fill the slots everyone shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from .gateway import Gateway, GatewayOptions
from .model import ModelReplica, ModelSpec
from .streams import StreamSpec

APP_NAME = "maskrt"
MODEL_DEPLOYMENT = "Segmenter"
GATEWAY_DEPLOYMENT = "Gateway"


@dataclass
class ServeOptions:
    """Everything `maskrt serve` sets (see commands/serve.py for the flags)."""

    model: ModelSpec
    replicas: int = 1
    max_replicas: int | None = None
    max_batch: int = 4
    batch_wait_s: float = 0.01
    max_queued: int | None = None  # default: 2 x max_batch x replicas
    replica_cpus: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    streams: list[StreamSpec] = field(default_factory=list)
    stream_cpus: float = 1.0
    request_timeout_s: float = 30.0
    max_bytes: int | None = None
    max_pixels: int | None = None
    upload_timeout_s: float = 60.0
    max_client_requests: int = 16
    health_check_period_s: float = 2.0
    health_check_timeout_s: float = 10.0
    route_prefix: str = "/"

    @property
    def queue_bound(self) -> int:
        return self.max_queued if self.max_queued is not None else 2 * self.max_batch * self.replicas


def model_deployment_options(o: ServeOptions) -> dict:
    """The Segmenter deployment's Serve options (see the module docstring)."""
    options = {
        "name": MODEL_DEPLOYMENT,
        "max_ongoing_requests": 2 * o.max_batch,
        "max_queued_requests": o.queue_bound,
        "health_check_period_s": o.health_check_period_s,
        "health_check_timeout_s": o.health_check_timeout_s,
        "graceful_shutdown_timeout_s": 5.0,
        "max_constructor_retry_count": 3,  # a model that cannot load fails the deployment, not 20 tries later
        "ray_actor_options": {"num_cpus": o.replica_cpus},
    }
    if o.max_replicas and o.max_replicas > o.replicas:
        options["autoscaling_config"] = {"min_replicas": o.replicas, "initial_replicas": o.replicas,
                                         "max_replicas": o.max_replicas, "target_ongoing_requests": o.max_batch}
    else:
        options["num_replicas"] = o.replicas
    return options


def gateway_options(o: ServeOptions) -> GatewayOptions:
    label = (f"{o.replicas}-{o.max_replicas} replicas (autoscaling)" if o.max_replicas and o.max_replicas > o.replicas
             else f"{o.replicas} replica{'s' if o.replicas != 1 else ''}")
    extra = {k: v for k, v in (("max_bytes", o.max_bytes), ("max_pixels", o.max_pixels)) if v is not None}
    # the page shows the model's name, never where it lies on the server
    return GatewayOptions(app=APP_NAME, model_deployment=MODEL_DEPLOYMENT, model_label=PurePath(o.model.path).name,
                          replicas_label=f"{label}, batches up to {o.max_batch}", max_batch=o.max_batch,
                          score_threshold=o.model.score_threshold, streams=tuple(s.name for s in o.streams),
                          request_timeout_s=o.request_timeout_s, upload_timeout_s=o.upload_timeout_s,
                          max_client_requests=o.max_client_requests, **extra)


def build_app(o: ServeOptions):
    """The bound Serve application (serve.run it)."""
    from ray import serve

    model = serve.deployment(ModelReplica).options(**model_deployment_options(o)).bind(
        o.model, o.max_batch, o.batch_wait_s, *([o.max_pixels] if o.max_pixels else []))
    gateway = serve.deployment(Gateway).options(
        name=GATEWAY_DEPLOYMENT, num_replicas=1, max_ongoing_requests=1000, max_queued_requests=1000,
        ray_actor_options={"num_cpus": 0}, health_check_period_s=o.health_check_period_s,
        max_constructor_retry_count=3)
    return gateway.bind(model, gateway_options(o))


def deploy(o: ServeOptions, *, start_http: bool = True, handles: dict | None = None) -> dict:
    """On the connected Ray cluster: start Serve's HTTP proxies on o.host:o.port (start_http),
    the stream actors and the application; wait until it is running (MaskrtError with the
    replicas' error in one line if it cannot start). Returns the stream handles, also put in
    `handles` as each stream starts, so that a caller interrupted meanwhile (a signal) can
    stop those already started (undeploy)."""
    from ray import serve

    from .streams import start_streams, stop_streams

    handles = {} if handles is None else handles
    if start_http:
        serve.start(http_options={"host": o.host, "port": o.port})
    if o.streams:
        start_streams(o.streams, o.model, num_cpus=o.stream_cpus, into=handles)
    try:
        serve.run(build_app(o), name=APP_NAME, route_prefix=o.route_prefix, blocking=False)  # waits: RUNNING
    except RuntimeError as exc:  # DEPLOY_FAILED: the replicas' own error, in one line
        from ..errors import MaskrtError

        if handles:
            stop_streams(handles)
            handles.clear()
        raise MaskrtError(f"the service failed to start: {deploy_failure() or exc}") from None
    return handles


def deploy_failure() -> str:
    """The last line of the first failed deployment's message (its replicas' exception), or ''."""
    from ray import serve

    try:
        app = serve.status().applications[APP_NAME]
    except Exception:  # noqa: BLE001
        return ""
    for deployment in app.deployments.values():
        lines = [line.strip() for line in (deployment.message or "").splitlines() if line.strip()]
        if str(getattr(deployment.status, "value", deployment.status)) == "DEPLOY_FAILED" and lines:
            return lines[-1]
    return ""


def undeploy(handles: dict) -> None:
    """Delete the application and stop the streams."""
    from ray import serve

    from .streams import stop_streams

    try:
        serve.delete(APP_NAME)
    finally:
        if handles:
            stop_streams(handles)
