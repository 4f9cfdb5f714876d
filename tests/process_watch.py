"""A `maskrt` command run in a session of its own, watched from outside: its processes (every
process of its session, Ray's workers included: they change process group, not session), the
sockets they listen on, a signal sent to its whole process group (what `timeout`, systemd and
container runtimes do), its exit, and whether any process outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


class Watched:
    def __init__(self, args: list[str], cwd: Path, env: dict | None = None):
        self.log = Path(cwd) / "command.log"
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                       **(env or {})}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "maskrt.cli", *args], stdout=log,
                                            stderr=subprocess.STDOUT, cwd=cwd, env=environment,
                                            start_new_session=True)
        self.pid = self.process.pid
        self.signalled_at: float | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """Every living process of the command's session but its own."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.pid != self.pid and os.getsid(proc.pid) == self.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (OSError, psutil.Error):
                pass
        return found

    def names(self) -> list[str]:
        out = []
        for proc in self.processes():
            try:
                out.append(" ".join(proc.cmdline())[:200])
            except psutil.Error:
                pass
        return out

    def listening(self) -> list[tuple[str, str, int]]:
        """(process, address, port) of every listening TCP socket of the command and its session."""
        out = []
        for proc in [psutil.Process(self.pid), *self.processes()]:
            try:
                name = " ".join(proc.cmdline()[:2])[-60:]
                out += [(name, c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="tcp")
                        if c.status == psutil.CONN_LISTEN]
            except psutil.Error:
                pass
        return out

    def wait_until(self, predicate, timeout_s: float, what: str):
        """predicate()'s first truthy value (checked every 0.1 s); AssertionError if the command
        exits first or timeout_s passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                raise AssertionError(f"the command exited ({self.process.returncode}) before {what}:\n"
                                     f"{self.output()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{self.output()[-3000:]}")

    def signal_group(self, sig: int) -> None:
        self.signalled_at = time.monotonic()
        os.killpg(self.pid, sig)

    def wait_exit(self, timeout_s: float) -> tuple[int, float]:
        """(exit code, seconds from the signal to the exit); the command is killed after timeout_s."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_everything()
            raise AssertionError(f"still running {timeout_s:.0f} s after the signal:\n{self.output()[-3000:]}")
        return code, time.monotonic() - (self.signalled_at or time.monotonic())

    def survivors(self, settle_s: float = 5.0) -> list[str]:
        """Processes of the session still running settle_s after the command exited (a process
        SIGKILLed a moment ago may take that long to be gone); [] when none."""
        deadline = time.monotonic() + settle_s
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.names()

    def kill_everything(self) -> None:
        for proc in [*self.processes()]:
            try:
                proc.kill()
            except psutil.Error:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait(timeout=30)
