"""Every output-writing path, table-driven: unique temporary names in the target's folder, nothing
left on success, error or a full disk; symlinks followed, devices and FIFOs never renamed over,
folders refused, a second writer refused, stale temporary files of dead writers removed.

The writers are maskrt's real ones (sinks, stats, checkpoint, generated videos, safeio itself);
the facts are read back with independent readers (json, PyAV, PIL, safetensors, os.stat).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskrt import safeio
from maskrt.engine.stream import PngFolderSink
from maskrt.errors import MaskrtError, OutputError
from maskrt.safeio import outputs as safeio_outputs
from maskrt.safeio import paths as safeio_paths
from tests.safeio.writers import EXPECTED, WRITERS, Boom, _FullDisk, _raise_boom, _target, _work


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(params=sorted(WRITERS))
def writer(request):
    return request.param


def test_success_leaves_only_the_target(writer, tmp_path):
    write, read, extra, _ = WRITERS[writer]
    target = _target(tmp_path, writer)
    write(target)
    assert read(target) == EXPECTED[writer]
    assert _listing(tmp_path) == sorted([target.name] + [target.with_suffix(e).name for e in extra])


def test_error_midway_leaves_the_old_file_and_nothing_else(writer, tmp_path):
    write, _, extra, _ = WRITERS[writer]
    target = _target(tmp_path, writer)
    target.write_text("precious")
    with pytest.raises(Boom):
        write(target, boom=_raise_boom)
    assert target.read_text() == "precious" and _listing(tmp_path) == [target.name]


def test_sigterm_midway_leaves_the_old_file_and_nothing_else(writer, tmp_path):
    """A real SIGTERM to this process in the middle of the write, handled as the CLI handles it
    (maskrt.signals: raised as Terminated in the main thread, where the handler runs)."""
    from maskrt.signals import Terminated, cli_handlers

    write = WRITERS[writer][0]
    target = _target(tmp_path, writer)
    target.write_text("precious")
    with cli_handlers(), pytest.raises(Terminated):
        write(target, boom=lambda: signal.raise_signal(signal.SIGTERM))
    assert target.read_text() == "precious" and _listing(tmp_path) == [target.name]


def test_symlink_is_followed_and_kept(writer, tmp_path):
    write, read, _, _ = WRITERS[writer]
    real = tmp_path / "elsewhere" / _target(tmp_path, writer).name
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link" / real.name
    link.parent.mkdir()
    link.symlink_to(real)
    write(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read(real) == EXPECTED[writer]


def test_a_folder_is_refused_before_writing(writer, tmp_path):
    write, _, _, _ = WRITERS[writer]
    target = _target(tmp_path, writer)
    target.mkdir()
    (target / "keep").write_text("k")
    with pytest.raises(OutputError, match="is a folder"):
        write(target)
    assert _listing(tmp_path) == [target.name] and _listing(target) == ["keep"]


def _char_device(tmp_path):
    """A character device that discards writes: a private copy of /dev/null as root (mknod),
    else a symlink to /dev/null (renaming over it is impossible without root anyway)."""
    node = tmp_path / "null"
    if os.geteuid() == 0:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    else:
        node.symlink_to("/dev/null")
    return node


def test_devices_and_fifos_are_written_in_place_or_refused(writer, tmp_path):
    write, _, _, seekable = WRITERS[writer]
    node = _char_device(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    if seekable:
        for target in (node, fifo):
            with pytest.raises(OutputError, match="device or pipe"):
                write(target)
    else:
        write(node)
        reader.start()
        write(fifo)
        reader.join(30)
        assert got and len(got[0]) > 0, "the FIFO's reader got the data"
    assert stat.S_ISCHR(os.stat(node).st_mode) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _listing(tmp_path) == ["fifo", "null"]


def test_a_second_writer_of_the_same_target_is_refused(writer, tmp_path):
    write, _, _, _ = WRITERS[writer]
    target = _target(tmp_path, writer)
    holder = safeio.Output(target, "other")  # flock conflicts across open files, in one process too
    try:
        with pytest.raises(OutputError, match="being written by another maskrt process"):
            write(target)
    finally:
        holder.close(False)
    assert _listing(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_dead_writers_are_removed(writer, tmp_path):
    write, _, extra, _ = WRITERS[writer]
    target = _target(tmp_path, writer)
    host = safeio_paths._HOST
    stale = tmp_path / f".{target.name}.{host}-{_dead_pid()}.abc123.partial"
    stale.write_text("left by SIGKILL")
    live = tmp_path / f".{target.name}.{host}-{os.getppid()}.def456.partial"  # a live writer's: kept
    live.write_text("in use")
    other = tmp_path / f".unrelated.{host}-{_dead_pid()}.ghi789.partial"  # another target's: kept
    other.write_text("not ours")
    write(target)
    names = _listing(tmp_path)
    assert stale.name not in names and live.name in names and other.name in names


@pytest.mark.parametrize("name", ["safeio.Output", "AtomicFile", "JsonLinesSink", "CocoResultsSink",
                                  "StreamStats.write_json"])
def test_full_disk_in_process_leaves_nothing(name, tmp_path, monkeypatch):
    """Writers that write through safeio's file objects; the others are covered by the
    RLIMIT_FSIZE test below, which fails the real writes of any library."""
    real_open = safeio_outputs._open
    monkeypatch.setattr(safeio_outputs, "_open", lambda *a, **k: _FullDisk(real_open(*a, **k), room=100))
    write = WRITERS[name][0]
    target = _target(tmp_path, name)
    target.write_text("precious")
    with pytest.raises((OSError, MaskrtError)) as info:
        write(target)
    if isinstance(info.value, MaskrtError):
        assert "No space left" in str(info.value) and "\n" not in str(info.value)
    assert target.read_text() == "precious" and _listing(tmp_path) == [target.name]


_FSIZE_CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from tests.safeio import writers as t
import numpy as np
folder = __import__("pathlib").Path(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
out = {}
for name in sorted(t.WRITERS):
    target = t._target(folder / name, name)
    try:
        t.WRITERS[name][0](target)
        out[name] = "wrote"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_full_disk_every_writer_leaves_nothing(tmp_path):
    """A file-size limit (RLIMIT_FSIZE: writes past 1 KiB fail with EFBIG, as with a full disk,
    for Python, FFmpeg and safetensors alike; no root needed) makes every writer fail."""
    for name in WRITERS:
        (tmp_path / name).mkdir()
        _target(tmp_path / name, name).write_text("precious")
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", _FSIZE_CHILD, str(tmp_path), root], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    for name in WRITERS:
        assert outcome[name] != "wrote", name
        assert _listing(tmp_path / name) == [_target(tmp_path, name).name], (name, outcome[name])
        assert _target(tmp_path / name, name).read_text() == "precious"


def test_png_folder_members_are_staged_and_renamed_together(tmp_path):
    """PngFolderSink: nothing under the final names until close(keep=True); close(False)
    removes the staged images; a member that is a folder is refused."""
    folder = tmp_path / "vis"
    sink = PngFolderSink(folder)
    for i in range(2):
        sink.write(_work(i))
    assert _listing(folder) == sorted([".maskrt-lock"] + [p.name for p in folder.glob(".*.partial")])
    sink.close(True)
    assert _listing(folder) == ["frame_000000.png", "frame_000001.png"]
    assert np.asarray(Image.open(folder / "frame_000001.png")).shape == (64, 64, 3)
    failed = PngFolderSink(tmp_path / "failed")
    failed.write(_work(0))
    failed.close(False)
    assert not (tmp_path / "failed").exists()
    (folder / "frame_000000.png").unlink()
    (folder / "frame_000000.png").mkdir()
    blocked = PngFolderSink(folder)
    with pytest.raises(OutputError, match="is a folder"):
        blocked.write(_work(0))
    blocked.close(False)
    assert _listing(folder) == ["frame_000000.png", "frame_000001.png"]


def _replaceable(path):
    return None if (path / "ENGINE").exists() else "is not ours"


def test_directory_output_swaps_whole_and_refuses_what_is_not_replaceable(tmp_path):
    target = tmp_path / "e.maskrt"
    target.mkdir()
    (target / "ENGINE").write_text("old")
    stale = tmp_path / f".e.maskrt.{safeio_paths._HOST}-{_dead_pid()}.zz.partial"
    stale.mkdir()  # a build killed with SIGKILL
    dest = safeio.DirectoryOutput(target, "engine", _replaceable)
    with pytest.raises(OutputError, match="being written by another maskrt process"):
        safeio.DirectoryOutput(target, "engine", _replaceable)
    tmp = dest.new_dir()
    (tmp / "ENGINE").write_text("new")
    dest.commit()
    dest.close()
    assert (target / "ENGINE").read_text() == "new" and _listing(tmp_path) == ["e.maskrt"]
    failed = safeio.DirectoryOutput(target, "engine", _replaceable)
    (failed.new_dir() / "half").write_text("x")
    failed.close()  # a failed build: the old engine stays, the half-built one goes
    assert _listing(target) == ["ENGINE"] and _listing(tmp_path) == ["e.maskrt"]
    changed = safeio.DirectoryOutput(target, "engine", _replaceable)
    changed.new_dir()
    (target / "ENGINE").unlink()
    (target / "mine.txt").write_text("the user's, put there during the build")
    with pytest.raises(OutputError, match="is not ours; refusing to replace it"):
        changed.commit()
    changed.close()
    assert _listing(target) == ["mine.txt"] and _listing(tmp_path) == ["e.maskrt"]
