"""Output paths: checks (inspect_target, refuse_overwriting), parent folders, unique temporary
names beside the target, removal of a dead writer's temporary files, and the flock lock."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path

from ..errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
    fcntl = None

TEMP_SUFFIX = ".partial"
LOCK_SUFFIX = ".maskrt-lock"
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"
_NAME_MAX = 100  # bytes of NAME kept in a temporary name, so that it stays under 255 bytes
_TEMP_RE = re.compile(r"^\.(?P<name>.*)\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.partial$", re.DOTALL)
_UMASK = os.umask(0o022)  # read once (os has no getter): new files get 0o666 & ~umask
os.umask(_UMASK)


def _short(name: str) -> str:
    """NAME cut to _NAME_MAX bytes (UTF-8, or the file system's encoding), at a character boundary."""
    raw = os.fsencode(name)
    return name if len(raw) <= _NAME_MAX else os.fsdecode(raw[:_NAME_MAX].decode("utf-8", "ignore").encode())


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def inspect_target(path: str | Path, what: str = "output", *, folder: bool = False,
                   seekable: bool = False) -> tuple[Path, bool]:
    """(path to write, direct) for an output path, or OutputError. Symlinks are followed;
    direct=True for a character device, a FIFO or a process's open file (/dev/stdout): written
    in place, never renamed over (refused when `seekable` or `folder`). A missing path is fine (it is created); an existing one must be of the kind asked."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows symlinks, /proc/self/fd/N included
    except FileNotFoundError:
        return Path(os.path.realpath(path)), False
    except NotADirectoryError:
        raise OutputError(f"cannot write {what} {path}: a folder in the path is a file") from None
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {_reason(exc)}") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        if folder:
            return Path(os.path.realpath(path)), False
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if folder:
        raise OutputError(f"{what} {path} is a file; give a folder")
    if stat.S_ISREG(mode) and not _through_proc(path):
        return Path(os.path.realpath(path)), False
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        if seekable:
            raise OutputError(f"{what} {path} is a device or pipe; this output needs a regular file")
        return path, True
    kind = "block device" if stat.S_ISBLK(mode) else "socket" if stat.S_ISSOCK(mode) else "special file"
    raise OutputError(f"{what} {path} is a {kind}; refusing to write to it")


def _through_proc(path: Path) -> bool:
    """True for a path reached through /proc or /dev/fd (/dev/stdout, /proc/self/fd/N: an open
    file of a process, written through that path, never renamed over)."""
    p = os.path.abspath(path)
    for _ in range(40):
        if os.path.realpath(os.path.dirname(p)).startswith(("/proc/", "/dev/fd/")) or p.startswith("/proc/"):
            return True
        if not os.path.islink(p):
            return False
        p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
    return False


def make_parents(folder: Path, what: str = "output") -> list[Path]:
    """Create `folder` and missing parents; return those created (deepest last). OutputError if
    a parent is a file or cannot be created."""
    missing = []
    probe = folder
    while not probe.exists():
        if os.path.lexists(probe):  # a dangling symlink in the path
            raise OutputError(f"cannot write {what}: {probe} is a broken symlink")
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write {what} under {folder}: {probe} is a file")
    made = []
    try:
        for part in reversed(missing):
            part.mkdir()
            made.append(part)
    except OSError as exc:
        remove_empty(made)
        raise OutputError(f"cannot create folder {folder} for {what}: {_reason(exc)}") from None
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are empty; keep the others."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def temp_name(target: Path) -> str:
    """A fresh temporary name for `target` (not created): .NAME.<host>-<pid>.<random>.partial."""
    return f".{_short(target.name)}.{_HOST}-{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def new_temp(target: Path, directory: bool = False, mode: int | None = None) -> Path:
    """Create (exclusively) an empty temporary file, or folder, beside `target` and return it.
    Its permissions are those of an existing target, else the umask's default."""
    prefix = f".{_short(target.name)}.{_HOST}-{os.getpid()}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=target.parent))
        tmp.chmod(0o777 & ~_UMASK if mode is None else mode)
        return tmp
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK if mode is None else mode)
    finally:
        os.close(fd)
    return Path(name)


def remove_stale_temps(target: Path, any_name: bool = False) -> list[Path]:
    """Remove the temporary files and folders of `target` (with any_name, of every target in
    target's folder) whose writer, a process of this host, is dead; return them."""
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or (not any_name and m["name"] != _short(target.name)) or m["host"] != _HOST \
                or _pid_alive(int(m["pid"])):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_quietly(path: Path | None) -> None:
    """Remove a temporary file or folder, ignoring errors (it may be gone already)."""
    if path is None:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _stat_key(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_overwriting(outputs: list[Path], inputs: list[Path], what: str = "output",
                       protected: list[Path] = ()) -> None:
    """OutputError if an output is one of the inputs (same file: symlinks and hard links
    included) or lies inside a protected folder (an engine being read)."""
    keys = {k: p for p in inputs if (k := _stat_key(p)) is not None}
    folders = [os.path.realpath(p) for p in protected]
    for out in outputs:
        key = _stat_key(out)
        if key is not None and key in keys:
            raise OutputError(f"{what} {out} is the input {keys[key]}; refusing to overwrite it")
        real = os.path.realpath(out)
        for folder in folders:
            if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
                raise OutputError(f"{what} {out} is inside the model {folder}; refusing to write there")


class OutputLock:
    """flock on `lock_path` (created; removed on release). Another holder: OutputError naming its
    pid, or with wait=True, a note on stderr and a wait for it."""

    def __init__(self, lock_path: Path, target: Path, what: str = "output", wait: bool = False):
        self.path, self.fd = lock_path, None
        if fcntl is None:  # pragma: no cover
            return
        while True:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise OutputError(f"cannot write {what} {target}: {_reason(exc)}") from None
            if self._lock(fd, target, what, wait):
                break
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def _lock(self, fd: int, target: Path, what: str, wait: bool) -> bool:
        """Lock fd; False if the file was replaced meanwhile (then retry)."""
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
                pid = f" (pid {owner})" if owner.isdigit() else ""
                if not wait:
                    raise OutputError(f"{what} {target} is being written by another maskrt process{pid}; "
                                      "wait for it to finish or choose another name") from None
                print(f"maskrt: waiting for another maskrt process{pid} writing {target}", file=sys.stderr,
                      flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if not same:
            os.close(fd)
        return same

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
