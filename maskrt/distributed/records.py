"""Completion records: `OUT/<name>.done.json`, written (temp, then rename) after an input's
outputs, so its presence means every output listed in it is complete.

A record holds the input (kind, path, size in bytes, mtime, sha256; for image sets every file's
name, size, mtime and sha256 and a sha256 over that listing), the engine (path and the sha256
of its manifest.json, which itself holds the sha256 of every payload file), the settings that
change outputs, the outputs (name -> size in bytes and sha256), frames, problems, the job id and
the node that wrote it.

Deciding "finished" (`finished_record`) reads only the record and stats files: the record must
parse, name the same engine hash and settings, the input's size and mtime (each image's, for
sets) must be those recorded, and every output must exist with its recorded size. Anything else
(no record, a changed input, another engine, a missing output) means the input is redone. The
content hashes are recorded for provenance, not re-read on every run (like make or rsync).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..hashing import sha256_file as sha256_of  # imported from here by the other batch modules
from ..safeio import commit_temp, write_atomic

RECORD_SUFFIX = ".done.json"
RECORD_VERSION = 1


def file_stat(path: str | Path) -> dict:
    """{"size": bytes, "mtime_ns": int} of a file (raises OSError when it is gone)."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def listing_sha256(files: list[list]) -> str:
    """sha256 over an image set's [name, size, mtime_ns, sha256] rows, one tab-separated line each."""
    text = "".join("\t".join(str(v) for v in row) + "\n" for row in files)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}{RECORD_SUFFIX}"


def commit_file(tmp: Path, final: Path) -> dict:
    """fsync a finished temporary output and rename it into place; {"size", "sha256"} of it."""
    commit_temp(tmp, final)
    return {"size": final.stat().st_size, "sha256": sha256_of(final)}


def write_record(out_dir: Path, name: str, record: dict, tmp_dir: Path) -> Path:
    path = record_path(out_dir, name)
    data = (json.dumps({"version": RECORD_VERSION, **record}, indent=1, sort_keys=True) + "\n").encode("utf-8")
    write_atomic(path, data, tmp_dir)
    return path


def read_record(out_dir: Path, name: str) -> dict | None:
    """The record of `name`, or None when there is none or it is unreadable."""
    try:
        data = json.loads(record_path(out_dir, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == RECORD_VERSION else None


def input_matches(item, recorded: dict) -> bool:
    """True when the input (an inputs.Input) still has the size and mtime recorded."""
    try:
        if item.kind == "video":
            now = file_stat(item.path)
            return recorded.get("size") == now["size"] and recorded.get("mtime_ns") == now["mtime_ns"]
        rows = recorded.get("files") or []
        if [row[0] for row in rows] != [display for display, _ in item.images]:
            return False
        for row, (_, path) in zip(rows, item.images):
            now = file_stat(path)
            if row[1] != now["size"] or row[2] != now["mtime_ns"]:
                return False
        return True
    except (OSError, TypeError, IndexError):
        return False


def finished_record(out_dir: Path, item, settings: dict) -> dict | None:
    """The record when `item` is finished with these settings (see the module docstring), else None."""
    record = read_record(out_dir, item.name)
    if record is None or record.get("settings") != settings or record.get("input", {}).get("path") != item.path:
        return None
    if not input_matches(item, record["input"]):
        return None
    for output, info in (record.get("outputs") or {}).items():
        try:
            if os.stat(Path(out_dir) / output).st_size != info.get("size"):
                return None
        except OSError:
            return None
    return record
