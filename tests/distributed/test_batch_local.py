"""`maskrt batch` without --ray: the same worker in this process. Bad inputs among good ones,
reruns that skip what is finished and redo what changed or is partial, one-line user errors.
The oracle for outputs is `maskrt run` on the same input (conftest.reference)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from maskrt.cli import main
from maskrt.distributed.state import driver_lock, state_dir
from tests.distributed.conftest import (SCORE, assert_exactly_once, assert_matches_reference, corrupt_png,
                                        image_folder, name_of, read_summary, record)
from tests.engine.test_sources import truncated_video

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")]


def batch(*args: str) -> int:
    return main(["batch", *args, "--threads", "1", "--score-threshold", SCORE, "--quiet"])


def test_bad_inputs_are_reported_and_the_others_complete(small_engine, archive, reference, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 50)
    cut = truncated_video(tmp_path / "cut")  # 20 frames announced, about 60% of the bytes kept
    folder = image_folder(tmp_path / "some_bad", 3, seed=4)
    corrupt_png(folder / "img001.png")
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    code = batch(str(garbage), str(archive["v0"]), str(cut), str(tmp_path / "missing.mp4"), str(folder),
                 "--model", str(small_engine), "--out-dir", str(out), "--coco", "--images-per-task", "1",
                 "--summary", str(summary))
    assert code == 1
    s = read_summary(summary)
    assert (s["inputs"], s["done"], s["skipped"], s["failed"]) == (5, 3, 0, 2)
    assert s["by_spec"][str(garbage)]["reason"].startswith(f"cannot read {garbage}: not a video")
    assert s["by_spec"][str(tmp_path / "missing.mp4")]["reason"] == f"input not found: {tmp_path / 'missing.mp4'}"
    [problem] = s["by_spec"][str(cut)]["problems"]
    assert "frames could be decoded (the file is truncated or damaged)" in problem
    assert 0 < s["by_spec"][str(cut)]["frames"] < 20
    [problem] = s["by_spec"][str(folder)]["problems"]
    assert problem.startswith(f"skipped: cannot read image {folder / 'img001.png'}")
    assert_exactly_once(out, [archive["v0"], cut, folder])
    assert_matches_reference(out, archive, reference, ["v0"])
    lines = (out / f"{name_of(folder)}.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 2]  # the unreadable image uses up index 1


def test_rerun_skips_finished_and_redoes_changed_or_partial(small_engine, archive, reference, tmp_path):
    inputs = tmp_path / "in"
    videos = []
    for key in ("v1", "v2", "v3"):
        (inputs / key).mkdir(parents=True)
        videos.append(Path(shutil.copy(archive[key], inputs / key / "clip.mp4")))
    folder = shutil.copytree(archive["imgs"], inputs / "imgs")
    out = tmp_path / "out"
    args = [*map(str, videos), str(folder), "--model", str(small_engine), "--out-dir", str(out), "--images-per-task",
            "2", "--summary", str(tmp_path / "s.json")]
    assert batch(*args) == 0
    first = {str(p): record(out, p) for p in [*videos, folder]}
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # v2's input is replaced by v4's video (new content, new mtime); v3 lost an output (partial);
    # a killed earlier run left a temporary folder and a chunk part behind
    time.sleep(0.01)
    shutil.copy(archive["v4"], videos[1])
    (out / f"{name_of(videos[2])}.mp4").unlink()
    (state_dir(out) / "tmp" / "stale.0123").mkdir(parents=True)
    (state_dir(out) / "parts").mkdir()
    (state_dir(out) / "parts" / f"{name_of(folder)}.part00001.jsonl").write_text('{"settings": null}\n')
    assert batch(*args) == 0
    s = read_summary(tmp_path / "s.json")
    status = {spec: r["status"] for spec, r in s["by_spec"].items()}
    assert status == {str(videos[0]): "skipped", str(videos[1]): "done", str(videos[2]): "done", str(folder): "skipped"}
    assert s["frames"] == 8  # only the two redone videos were segmented again
    for path in (videos[0], folder):  # untouched: same record, same files
        assert record(out, path) == first[str(path)]
        name = name_of(path)
        assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in out.iterdir() if p.name.startswith(name))
    assert record(out, videos[1])["input"]["sha256"] != first[str(videos[1])]["input"]["sha256"]
    assert (out / f"{name_of(videos[1])}.jsonl").read_bytes() == reference["v4"]["jsonl"]
    assert (out / f"{name_of(videos[2])}.mp4").read_bytes() == reference["v3"]["mp4"]
    assert_exactly_once(out, [*videos, folder], coco=False)


def test_user_errors_are_one_line(small_engine, archive, tmp_path, capsys):
    out = tmp_path / "out"
    assert batch(str(tmp_path / "nothing.mp4"), "--model", str(small_engine), "--out-dir", str(out)) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"maskrt: error: no input to segment (input not found: {tmp_path / 'nothing.mp4'})"]
    (tmp_path / "file").write_text("x")
    assert batch(str(archive["v0"]), "--model", str(small_engine), "--out-dir", str(tmp_path / "file")) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    out.mkdir()
    with driver_lock(out):  # another driver is writing to out
        assert batch(str(archive["v0"]), "--model", str(small_engine), "--out-dir", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"maskrt: error: another `maskrt batch` is writing to {out} ({state_dir(out) / 'lock'} is locked)"
    assert os.listdir(out) == [".maskrt-batch"]


def test_devices_fifos_and_sockets_are_refused_and_the_rest_done(small_engine, archive, reference, tmp_path):
    """Issue 22, item 6: `maskrt batch /dev/zero img` hashed /dev/zero forever. A character device,
    a FIFO (no writer: opening it would block) and a socket are refused in one line each, also
    when a glob or a list names them, and the good input is done."""
    import socket

    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.mp4"))
    listing = tmp_path / "todo.txt"
    listing.write_text("/dev/zero\n")
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    try:
        code = batch("/dev/zero", str(fifo), str(tmp_path / "sock.mp4"), str(tmp_path / "*.mp4"), str(listing),
                     str(archive["v0"]), "--model", str(small_engine), "--out-dir", str(out), "--summary",
                     str(summary))
    finally:
        sock.close()
    assert code == 1
    s = read_summary(summary)
    reasons = {r["spec"]: r["reason"] for r in s["results"] if r["status"] == "failed"}
    assert reasons == {
        "/dev/zero": "/dev/zero is a character device, not a file: it cannot be an input",
        str(fifo): f"{fifo} is a FIFO (named pipe), not a file: it cannot be an input",
        str(tmp_path / "sock.mp4"): f"{tmp_path / 'sock.mp4'} is a socket, not a file: it cannot be an input",
    }  # the glob's and the list's matches are the same paths: reported once
    assert s["done"] == 1 and s["by_spec"][str(archive["v0"])]["status"] == "done"
    assert_exactly_once(out, [archive["v0"]], coco=False)
    assert_matches_reference(out, archive, reference, ["v0"], coco=False)


def test_a_list_naming_only_itself_says_so(small_engine, tmp_path, capsys):
    listing = tmp_path / "self.txt"
    listing.write_text("# a list of lists\nself.txt\n\n")
    assert batch(str(listing), "--model", str(small_engine), "--out-dir", str(tmp_path / "out")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"maskrt: error: no input to segment (list {listing} names no input (only itself, lists already read, "
        "blank lines or comments))"]
