"""Durable writes for state that must survive a crash of the machine: the batch job's completion
records, its outputs' final rename and attempt counters, and the streams' append-only logs.

- `write_atomic(path, data, tmp_dir)`: a unique temporary file (in tmp_dir, on the same file
  system as path), fsync'd, then renamed onto path: readers see the old file or the whole new
  one, never a part, also after a power cut.
- `commit_temp(tmp, final)`: fsync a finished temporary file and rename it into place.
- `AppendLog`: an append-only JSON-lines file: at open, a line cut short by a killed writer is
  removed (so every line parses) and the last complete record is returned; each line goes out in
  one write() (looping on a short write).

Unlike `Output`, these do not claim, check or lock the target: their callers (maskrt batch's
per-unit lock, one stream actor per log) already own it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_atomic(path: str | Path, data: bytes, tmp_dir: str | Path | None = None, mode: int = 0o644) -> None:
    """Write `data` to a unique temporary file in tmp_dir (default: path's folder; it must be on
    path's file system), fsync it, then rename it onto path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; these are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def commit_temp(tmp: str | Path, final: str | Path) -> None:
    """fsync the finished temporary file `tmp`, then rename it onto `final` (same file system)."""
    fsync_file(tmp)
    os.replace(tmp, final)


def last_complete_line(path: Path) -> tuple[dict | None, int]:
    """(the last complete line of a JSON-lines file, parsed, or None; the byte length up to and
    including that line's newline). Reads the file backwards in blocks."""
    if not path.exists():
        return None, 0
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, tail = end, b""
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            cut = tail.rfind(b"\n")
            if cut < 0:
                continue
            keep = pos + cut + 1
            start = tail.rfind(b"\n", 0, cut)
            if start >= 0 or pos == 0:
                return json.loads(tail[start + 1:cut]), keep
        return None, 0


class AppendLog:
    """An append-only JSON-lines file. open() cuts a partial last line and returns the last
    complete record (None for a new or empty file); append(record) writes one line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def open(self) -> dict | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        last, keep = last_complete_line(self.path)
        if self.path.exists() and self.path.stat().st_size != keep:
            os.truncate(self.path, keep)  # a partial line from a killed process
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return last

    def append(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:  # one write() for a line under the pipe/disk block; loop in case of a short write
            view = view[os.write(self._fd, view):]

    def sync(self) -> None:
        """fsync what was appended (a record that must survive a crash of the machine)."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
