"""The Ray path: workers as Ray actors in a `ray.util.ActorPool`, which hands each unit to the
next idle actor. Ray does the distribution, restarts and retries; nothing here schedules.

Actors: `max_restarts=-1` (a dead actor is started again, on another node if its node is gone)
and `max_task_retries=-1` (the unit it was running is run again on the restarted actor), so
Ray executes a unit at least once. The worker itself stops a unit after `max_attempts` attempts
(see work.Worker.process), which bounds the retries of an input that kills its worker every time.
Outputs are exactly once because of fixed names, temp-then-rename and completion records, not
because of Ray. Actors are named `maskrt-batch-<job>-worker-<i>` in namespace "maskrt", spread over
the nodes (`scheduling_strategy="SPREAD"`).

Progress: a small actor (no CPU, on the driver's node) receives each worker's frame count about
once a second; the driver reads the total for its progress bar.
"""

from __future__ import annotations

import logging
import os
import sys

from ..errors import MaskrtError
from .settings import JobSettings, Unit
from .state import FAULT_ENV
from .work import Worker

NAMESPACE = "maskrt"
READY_TIMEOUT_S = 300.0
KILL_S = 15.0  # the longest stopping the actors (and leaving a cluster) may take


def _ray():
    try:
        import ray
    except ImportError:
        raise MaskrtError("--ray needs Ray: pip install 'maskrt[ray]'") from None
    return ray


def connect(address: str | None):
    """Join the cluster at `address` ("auto", "HOST:PORT", "ray://HOST:10001", or $RAY_ADDRESS
    when empty), or start a Ray of our own on this machine (maskrt.local_ray: loopback only,
    stopped completely at the end) when it is empty and RAY_ADDRESS is not set. Returns None
    when Ray was already connected (nothing to undo), True when this call joined a cluster
    (disconnect at the end), or the LocalRay it started."""
    ray = _ray()
    if ray.is_initialized():
        return None
    from ..local_ray import LocalRay, our_signal_handlers

    options = {"logging_level": logging.WARNING, "log_to_driver": False, "namespace": NAMESPACE}
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if not address:
            local = LocalRay(include_dashboard=False, **options)
            local.start()
            return local
        with our_signal_handlers():
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise MaskrtError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return True


def _progress_class():
    """The progress actor's class, defined here so that Ray pickles it by value: its worker
    process then needs neither maskrt nor torch (a class importable from this module would make
    it import maskrt: ~1 GB and many seconds for a counter)."""

    class Progress:
        """Frames done per unit (a retried unit starts again from 0); total() for the driver."""

        def __init__(self):
            self.frames = {}

        def report(self, key, frames):
            self.frames[key] = frames

        def total(self):
            return sum(self.frames.values())

    return Progress


class RayProgress:
    """The callable a worker reports progress through: it holds the progress actor's name (a
    handle among an actor's constructor arguments would keep them in the object store, which a
    restart after node loss may not find) and looks the actor up on first use."""

    def __init__(self, name: str):
        self.name = name
        self._handle = None

    def __getstate__(self) -> dict:
        return {"name": self.name}

    def __setstate__(self, state: dict) -> None:
        self.name, self._handle = state["name"], None

    def __call__(self, key: str, frames: int) -> None:
        try:
            if self._handle is None:
                import ray

                self._handle = ray.get_actor(self.name, namespace=NAMESPACE)
            self._handle.report.remote(key, frames)
        except Exception:  # noqa: BLE001 - progress is cosmetic; never fail a unit over it
            pass


class RayExecutor:
    """workers: number of actors (default: the cluster's CPUs / cpus_per_worker, at most `limit`)."""

    mode = "ray"

    def __init__(self, settings: JobSettings, address: str | None, workers: int | None, cpus_per_worker: float,
                 limit: int):
        self.settings, self.address = settings, address
        self.requested, self.cpus, self.limit = workers, cpus_per_worker, limit
        self.workers = 0
        self._connected = False
        self._actors, self._pool, self._progress = [], None, None
        self._refs: dict[str, tuple] = {}  # key -> (ref, unit) of units handed to an actor
        self._submitted: dict[str, Unit] = {}
        self._resolved: set[str] = set()

    def start(self) -> None:
        ray = _ray()
        from ray.util import ActorPool
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._connected = connect(self.address)
        here = ray.get_runtime_context().get_node_id()
        progress_name = f"maskrt-batch-{self.settings.job}-progress"
        self._progress = ray.remote(_progress_class()).options(
            name=progress_name, namespace=NAMESPACE, num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()
        count = self.requested or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus))
        count = max(1, min(count, self.limit))
        options = {"num_cpus": self.cpus, "max_restarts": -1, "max_task_retries": -1, "scheduling_strategy": "SPREAD",
                   "namespace": NAMESPACE}
        if os.environ.get(FAULT_ENV):  # the test hook travels to the workers
            options["runtime_env"] = {"env_vars": {FAULT_ENV: os.environ[FAULT_ENV]}}
        actor_class = ray.remote(Worker)
        actors = [actor_class.options(name=f"maskrt-batch-{self.settings.job}-worker-{i}", **options)
                  .remote(self.settings, RayProgress(progress_name)) for i in range(count)]
        self._actors = actors
        ready = self._ready(ray, actors)
        self._pool = ActorPool(ready)
        self.workers = len(ready)

    def _ready(self, ray, actors: list) -> list:
        """The actors that loaded the engine within READY_TIMEOUT_S (others are killed); a worker
        that cannot load it fails the job in one line."""
        refs = {a.ready.remote(): a for a in actors}
        done, late = ray.wait(list(refs), num_returns=len(refs), timeout=READY_TIMEOUT_S)
        for ref in done:
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, MaskrtError) else exc
                raise MaskrtError(f"a worker cannot start: {str(cause).splitlines()[0]}") from None
        for ref in late:
            ray.kill(refs[ref])
        if not done:
            raise MaskrtError(f"no worker started within {READY_TIMEOUT_S:.0f} s (cluster resources: "
                              f"{ray.cluster_resources()}; each worker needs {self.cpus} CPU)")
        return [refs[ref] for ref in done]

    def submit(self, unit: Unit) -> None:
        self._submitted[unit.key] = unit
        self._pool.submit(self._call, unit)

    def _call(self, actor, unit: Unit):
        ref = actor.process.remote(unit)
        self._refs[unit.key] = (ref, unit)
        return ref

    def busy(self) -> bool:
        return len(self._resolved) < len(self._submitted)

    def next(self, timeout: float) -> list[dict]:
        """Results that arrived within `timeout` s (possibly none)."""
        ray = _ray()
        if not self._pool.has_next():  # every actor is gone: what was never handed out cannot run
            return [self._failed(u, "no worker left to run it") for k, u in self._submitted.items()
                    if k not in self._resolved]
        try:
            result = self._pool.get_next_unordered(timeout=timeout)
        except TimeoutError:
            return []
        except ray.exceptions.RayError:
            return self._errored(ray)
        self._resolved.add(result["key"])
        return [result]

    def _errored(self, ray) -> list[dict]:
        """Units whose task raised in Ray (not in the worker: its actor could not be restarted):
        found by asking each outstanding reference, as the pool does not say which one it was."""
        pending = [(k, ref, unit) for k, (ref, unit) in self._refs.items() if k not in self._resolved]
        if not pending:
            return []
        ready, _ = ray.wait([ref for _, ref, _ in pending], num_returns=len(pending), timeout=0)
        out = []
        for key, ref, unit in pending:
            if ref in ready:
                try:
                    ray.get(ref, timeout=0)
                except ray.exceptions.RayError as exc:
                    out.append(self._failed(unit, f"Ray: {str(exc).splitlines()[0]}"))
        return out

    def _failed(self, unit: Unit, reason: str) -> dict:
        self._resolved.add(unit.key)
        return {"key": unit.key, "kind": unit.kind, "input": unit.item.name, "status": "failed", "reason": reason,
                "attempts": 1, "frames": 0, "problems": []}

    def frames(self) -> int | None:
        ray = _ray()
        try:
            return ray.get(self._progress.total.remote(), timeout=2.0)
        except Exception:  # noqa: BLE001 - the progress actor is cosmetic
            return None

    def close(self) -> bool:
        """Stop the actors (also on Ctrl-C or SIGTERM: nothing keeps writing after the driver
        stops). With our own Ray, stop it and every process it started (a signal to the whole
        group may have reached Ray's processes too: maskrt.local_ray); False when the Ray client
        here could not be shut down cleanly (the command should then leave at once)."""
        from ..local_ray import LocalRay, within

        if "ray" not in sys.modules:
            return True
        import ray

        local = self._connected if isinstance(self._connected, LocalRay) else None
        if ray.is_initialized() and (local is None or local.usable()):
            within(KILL_S, self._kill_actors, ray)
        if local is not None:  # after an error or a signal the command ends: Ray is simply ended
            return local.stop(graceful=sys.exc_info()[0] is None)
        if self._connected:
            return within(KILL_S, ray.shutdown)
        return True

    def _kill_actors(self, ray) -> None:
        for actor in [*self._actors, *([self._progress] if self._progress else [])]:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
