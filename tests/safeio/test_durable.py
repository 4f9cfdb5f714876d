"""Durable writes (safeio/durable.py): fsync'd temp-then-rename, and the append-only log."""

from __future__ import annotations

import json
import os

import pytest

from maskrt.safeio import AppendLog, commit_temp, write_atomic
from maskrt.safeio import durable


def test_write_atomic_fsyncs_before_the_rename_and_leaves_no_temp(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    target = tmp_path / "record.json"
    target.write_text("old")
    write_atomic(target, b"new", tmp_path)
    assert target.read_bytes() == b"new" and events == ["fsync", "replace"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_write_atomic_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_text("old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_atomic(target, b"new" * 1000)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_commit_temp_fsyncs_then_renames(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(durable, "fsync_file", synced.append)
    tmp = tmp_path / "part.tmp"
    tmp.write_bytes(b"data")
    commit_temp(tmp, tmp_path / "out.bin")
    assert synced == [tmp] and (tmp_path / "out.bin").read_bytes() == b"data" and not tmp.exists()


def test_append_log_cuts_a_torn_line_and_continues(tmp_path):
    path = tmp_path / "s.jsonl"
    log = AppendLog(path)
    assert log.open() is None
    for i in range(3):
        log.append({"frame": i})
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"frame": 3, "inst')  # a writer killed mid-line
    again = AppendLog(path)
    assert again.open() == {"frame": 2}
    again.append({"frame": 3})
    again.close()
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]


def test_last_complete_line_reads_back_over_block_boundaries(tmp_path):
    path = tmp_path / "long.jsonl"
    log = AppendLog(path)
    log.open()
    for i in range(4):
        log.append({"frame": i, "payload": "y" * 70_000})  # each line longer than the 64 KiB read block
    log.close()
    last, keep = durable.last_complete_line(path)
    assert last["frame"] == 3 and keep == path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"z" * 100_000)  # a partial line longer than a block
    last, keep = durable.last_complete_line(path)
    assert last["frame"] == 3 and keep == path.stat().st_size - 100_000
    (tmp_path / "partial_only.jsonl").write_bytes(b'{"frame": 0')
    assert durable.last_complete_line(tmp_path / "partial_only.jsonl") == (None, 0)
    assert durable.last_complete_line(tmp_path / "missing.jsonl") == (None, 0)
