"""A Ray instance of the command's own, started on this machine and stopped completely.

`maskrt serve` (without --ray) and `maskrt batch --ray` (without an address) start Ray for the
command. Ray's processes (GCS, raylet, agents; workers are in groups of their own) are the
command's descendants and share its process group, so a signal sent to the whole group reaches
them too: SIGINT (Ctrl-C in a terminal) is blocked in them, but SIGTERM (what `timeout`, systemd
and container runtimes send to every process of the group) and SIGHUP end the agents at once
and the raylet within seconds (measured: 10 s). A driver that then asks Ray to delete an
application waits for ever, or 60 s for GCS and dies ("Failed to connect to GCS"); workers
whose raylet died can go on as orphans.

So `LocalRay`:
- runs Ray in its single-machine mode: every Ray process listens on 127.0.0.1 only (but Ray
  Serve's replicas' own gRPC port, see the README);
- makes this process a child subreaper (Linux) before Ray starts, so a Ray process orphaned by
  the death of its parent becomes this process's child and stays findable;
- `usable()` says whether Ray's GCS and raylet still run: only then may the command ask Ray for
  anything (stop its streams or actors), each step within a deadline;
- `stop()` ends every process Ray started (SIGTERM, then SIGKILL after `grace_s`): nothing the
  command started outlives it. Gracefully (the command goes on, e.g. to print its summary) it
  first shuts the Ray client down within a deadline; after a signal or an error (the command
  ends right after) it skips that, as shutting down after a signal to the whole group waits
  seconds for processes already stopping, and the command then leaves with `leave_now`
  (os._exit after flushing), since interpreter teardown would wait on Ray's client threads.

Not covered: a signal to the whole group in the moment GCS itself starts ends GCS before it
says which port it took, and ray.init then waits for that in C++, holding the interpreter, for
30 s (RAY_gcs_server_port_wait_time_s); the command ends after that, exit 130, nothing left.

Leaf module: imports Ray and psutil only when used.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading

PR_SET_CHILD_SUBREAPER = 36
RAY_CORE = ("gcs_server", "raylet")


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process instead of init (Linux); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def our_signal_handlers():
    """Around ray.init: it replaces SIGTERM's handler with sys.exit(15), and its core worker
    installs a C++ one that dumps a stack and aborts the process. Afterwards the handlers in
    place before (the CLI's: SIGTERM and SIGHUP like Ctrl-C) are put back, and a SystemExit(15)
    raised by Ray's handler meanwhile becomes Terminated, as if ours had run."""
    import signal

    from .signals import Terminated

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        raise Terminated("SIGTERM") from None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def loopback_only() -> None:
    """Make a Ray instance started by this process (and its processes) use 127.0.0.1 as the
    node's address, so that GCS, the raylet, the workers, the agents and Ray's metrics
    exporters listen on loopback only. This is Ray's single-machine mode (the default on macOS
    and Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`); on Linux Ray otherwise binds them to
    every interface. Ray reads the variable when it is first imported: when it already is (a
    test calling the command in process), its constant is set too."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def within(seconds: float, fn, *args) -> bool:
    """Run fn(*args) on a daemon thread; True when it returned (or raised) within `seconds`."""
    thread = threading.Thread(target=_quietly, args=(fn, *args), daemon=True, name=f"bounded-{fn.__name__}")
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except BaseException:  # noqa: BLE001 - the caller only asks whether it finished
        pass


def end_descendants(grace_s: float = 5.0, keep: frozenset = frozenset()) -> list[int]:
    """SIGTERM every descendant of this process (but the pids in `keep`), SIGKILL those still
    running after grace_s; the pids that needed SIGKILL. Zombies among them are reaped."""
    import psutil

    me = psutil.Process()
    procs = [p for p in _living(me.children(recursive=True)) if p.pid not in keep]
    for proc in procs:
        _signal(proc, "terminate")
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        _signal(proc, "kill")
    psutil.wait_procs(alive, timeout=grace_s)
    for child in me.children():  # reap what is left as a zombie of ours (orphans adopted as subreaper)
        try:
            child.wait(timeout=0)
        except (psutil.Error, OSError):
            pass
    return [p.pid for p in alive]


def _living(procs):
    import psutil

    out = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            pass
    return out


def _signal(proc, how: str) -> None:
    import psutil

    try:
        getattr(proc, how)()
    except psutil.Error:
        pass


class LocalRay:
    """See the module docstring. init_options go to ray.init (address "local" is implied)."""

    def __init__(self, **init_options):
        self.init_options = init_options
        self.started = False
        self.before: frozenset = frozenset()

    def start(self) -> None:
        """ray.init a new local instance, every Ray process listening on 127.0.0.1 only."""
        loopback_only()
        import ray

        import psutil

        # processes this one had before (a test calling the command in process): not Ray's
        self.before = frozenset(p.pid for p in psutil.Process().children(recursive=True))
        become_subreaper()
        self.started = True  # before init: a signal during init must still stop what it started
        with our_signal_handlers():
            ray.init(address="local", **self.init_options)

    def _core(self) -> list:
        import psutil

        found = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.pid not in self.before and any(name in " ".join(proc.cmdline()[:1]) for name in RAY_CORE):
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    def usable(self) -> bool:
        """True when GCS and the raylet are running (a signal to the whole group may end them,
        at once or seconds later: graceful steps stay bounded all the same)."""
        import psutil

        core = self._core()
        try:
            return len(core) >= len(RAY_CORE) and all(p.status() != psutil.STATUS_ZOMBIE for p in core)
        except psutil.Error:
            return False

    def stop(self, graceful: bool = True, shutdown_s: float = 15.0, grace_s: float = 2.0) -> bool:
        """With `graceful`, ray.shutdown() within shutdown_s (when GCS and the raylet still run);
        then end every descendant. True when the Ray client here was shut down; otherwise the
        command must leave with leave_now (see the module docstring)."""
        clean = not self.started
        if self.started and graceful and self.usable():
            import ray

            clean = within(shutdown_s, ray.shutdown)
        end_descendants(grace_s, keep=self.before)
        return clean


def leave_as_main_would() -> None:
    """leave_now with the exit code, and the line, that maskrt.cli.main gives for the exception
    being handled (none: 0): 130 "interrupted" for Ctrl-C, SIGTERM and SIGHUP (also when Ray's
    own SIGTERM handler raised SystemExit(15)), 2 and its line for a MaskrtError, else 1."""
    import signal

    from .errors import MaskrtError

    kind, exc = sys.exc_info()[:2]
    if kind is None:
        leave_now(0)
    if issubclass(kind, KeyboardInterrupt) or (issubclass(kind, SystemExit) and exc.code == signal.SIGTERM):
        sys.stderr.write("maskrt: interrupted\n")
        leave_now(130)
    text = str(exc).splitlines()[0] if str(exc) else ""
    sys.stderr.write(f"maskrt: error: {text}\n" if issubclass(kind, MaskrtError) else
                     f"maskrt: error: {type(exc).__name__}: {text}\n")
    leave_now(2 if issubclass(kind, MaskrtError) else 1)


def leave_now(code: int) -> None:
    """Flush and end the process at once (after LocalRay.stop() returned False: no atexit, no
    interpreter teardown)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
