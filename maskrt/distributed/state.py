"""The job's working state under `OUT/.maskrt-batch/`, on the same file system as the outputs.

    lock                      held (flock) by the one driver writing to OUT
    locks/<unit>.lock         held by the attempt working on a unit (a killed process drops it)
    attempts/<job>/<unit>     how many attempts at a unit this job made (counts re-executions)
    tmp/<unit>.<uuid>/        an attempt's outputs before they are renamed into OUT
    parts/<unit>.jsonl        a finished chunk of an image set (header line, then JSON lines)

Every name is unique per attempt, so two attempts never write the same temporary file; the unit
lock makes a late attempt (a retry that started while a killed process was still exiting, or a
rerun of the command while the old job's workers were being stopped) wait for the earlier one.
The driver removes everything but `lock` when the job ends, also when it is interrupted (Ctrl-C,
SIGTERM), then keeping only the finished parts of image sets not yet joined (cleanup).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from ..errors import MaskrtError
from ..safeio import write_atomic

STATE_DIR = ".maskrt-batch"
FAULT_ENV = "MASKRT_BATCH_FAULT"


def state_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / STATE_DIR


@contextlib.contextmanager
def driver_lock(out_dir: Path):
    """Refuse a second driver on the same output folder (the lock goes with the process)."""
    path = state_dir(out_dir) / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise MaskrtError(f"another `maskrt batch` is writing to {out_dir} ({path} is locked)") from None
            raise
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def unit_lock(out_dir: Path, key: str, timeout: float):
    """Hold the unit's lock; wait up to `timeout` s for an earlier attempt to finish or die."""
    folder = state_dir(out_dir) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise MaskrtError(f"another process has been writing {key} for over {timeout:.0f} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def mark_attempt(out_dir: Path, job: str, key: str) -> int:
    """Count one more attempt at `key` in this job (call with the unit lock held: no other
    attempt reads or writes the counter meanwhile); returns this attempt's number."""
    folder = state_dir(out_dir) / "attempts" / job
    folder.mkdir(parents=True, exist_ok=True)
    counter = folder / key
    try:
        n = int(counter.read_text() or 0) + 1
    except (FileNotFoundError, ValueError):
        n = 1
    write_atomic(counter, str(n).encode())
    return n


def fresh_tmp(out_dir: Path, key: str) -> Path:
    """A new temporary folder for one attempt at `key`, after removing earlier attempts' ones
    (their processes are gone: we hold the unit lock)."""
    root = state_dir(out_dir) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(f"{key}.*"):
        shutil.rmtree(old, ignore_errors=True)
    path = root / f"{key}.{uuid.uuid4().hex}"
    path.mkdir()
    return path


def parts_dir(out_dir: Path) -> Path:
    path = state_dir(out_dir) / "parts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cleanup(out_dir: Path, finished: bool = True, wait_s: float = 30.0) -> bool:
    """The job is over (done, failed or interrupted): remove its working state but the driver
    lock: temporary folders, attempt counters and unit locks, and, when `finished`, the parts
    of image sets (an interrupted job keeps the finished chunks, which the next run reuses).
    Each unit lock is taken first, so nothing is removed while a worker still writes (a killed
    worker lets go of its lock when its process ends; one on another node that is still being
    stopped holds it a moment longer). False, with everything left, when some lock was still
    held after wait_s."""
    root = state_dir(out_dir)
    held = []
    try:
        for path in sorted((root / "locks").glob("*.lock")):
            fd = os.open(path, os.O_RDWR)
            held.append(fd)
            if not _flock_within(fd, wait_s):
                return False
        for name in ("tmp", "attempts", "locks") + (("parts",) if finished else ()):
            shutil.rmtree(root / name, ignore_errors=True)
        return True
    finally:
        for fd in held:
            os.close(fd)


def _flock_within(fd: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                return False
        time.sleep(0.1)


def fault_point(point: str, key: str) -> None:
    """Test hook: with MASKRT_BATCH_FAULT="POINT[:KEY-SUBSTRING][,...]@DIR" the process exits
    (os._exit, as a crash) the first time it reaches POINT for a unit whose key contains
    KEY-SUBSTRING; DIR remembers what has fired (file KEY.POINT holding the pid). Points: start, after-rename (an output is in
    place, the record is not), after-record (all is written, the task has not returned); and
    hold (at a unit's start): instead of exiting, the process writes KEY.hold ({"pid", "node"})
    and waits until DIR/release exists (at most 10 minutes), so a test can act while units run."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or "@" not in spec:
        return
    rules, folder = spec.rsplit("@", 1)
    for rule in rules.split(","):
        name, _, needle = rule.partition(":")
        if name == point and needle in key:
            try:
                fd = os.open(Path(folder) / f"{key}.{point}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            if point == "hold":
                os.write(fd, json.dumps({"pid": os.getpid(), "node": _node_id()}).encode())
                os.close(fd)
                _wait_for_file(Path(folder) / "release", 600.0)
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(17)


def _node_id() -> str | None:
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return None


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
