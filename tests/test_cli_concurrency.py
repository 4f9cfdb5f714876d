"""Two processes writing the same outputs (issue 16, item 5): one is refused in one line while the
other writes, and the outputs are always one whole run's; light racing writers of one file never
mix. (One Segmenter shared by four threads: tests/engine/test_stream_lifecycle.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av

from maskrt.cli import main
from maskrt.data import generate_video
from tests.test_cli_data_safety import SMALL, engine, listing, one_line_error  # noqa: F401 - engine: fixture


def test_two_processes_writing_the_same_outputs(engine, tmp_path, capsys):
    """While one process writes o.mp4 + o.jsonl, another (this one) is refused in one line and
    writes nothing; once the first is done, the second run replaces both outputs whole. Never a
    mixed or broken file (issue 16, item 5)."""
    video = generate_video(tmp_path / "long.mp4", num_frames=30, fps=10, size=(64, 96), seed=8)
    outs = ["--out", str(tmp_path / "o.mp4"), "--json", str(tmp_path / "o.jsonl"), "--score-threshold", "0"]
    cmd = [sys.executable, "-m", "maskrt.cli", "run", str(video), "--model", engine, *SMALL, *outs, "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".o.jsonl.*.partial")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # until the first one writes frames
    assert first.poll() is None, first.stderr.read()
    one_line_error(capsys, main(["run", str(video), "--model", engine, *SMALL, *outs, "--quiet"]),
                   "is being written by another maskrt process")
    assert first.wait(timeout=240) == 0, first.stderr.read()
    for run in ("first", "second"):
        records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
        assert [r["frame"] for r in records] == list(range(30)), run
        with av.open(str(tmp_path / "o.mp4")) as c:
            assert len(list(c.decode(video=0))) == 30, run
        assert listing(tmp_path) == ["long.json", "long.mp4", "o.jsonl", "o.mp4"], run
        if run == "first":
            assert main(["run", str(video), "--model", engine, *SMALL, *outs, "--quiet"]) == 0


_RACER = r"""
import sys, time
from maskrt.safeio import Output
from maskrt.errors import OutputError
me, target = sys.argv[1], sys.argv[2]
try:
    with Output(target, "--json") as out:
        f = out.open("w")
        for i in range(200):
            f.write(f"{me} {i}\n")
            f.flush()
            time.sleep(0.001)
    print("wrote")
except OutputError as exc:
    print("refused" if "another maskrt process" in str(exc) else exc)
"""


def test_racing_writers_never_mix(tmp_path):
    """Light processes (maskrt.safeio only) racing on one target, 6 rounds: each round the
    file is entirely one writer's, and every writer either wrote or was refused."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    target = tmp_path / "t.jsonl"
    for _ in range(6):
        procs = [subprocess.Popen([sys.executable, "-c", _RACER, name, str(target)], stdout=subprocess.PIPE,
                                  text=True, env=env) for name in ("a", "b", "c")]
        outcomes = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert set(outcomes) <= {"wrote", "refused"} and "wrote" in outcomes, outcomes
        lines = target.read_text().splitlines()
        writers = {line.split()[0] for line in lines}
        assert len(writers) == 1 and [line.split()[1] for line in lines] == [str(i) for i in range(200)]
        assert listing(tmp_path) == ["t.jsonl"]
