"""`maskrt batch` stopped by a signal to its whole process group at every phase: while its own
Ray starts, while workers write outputs (with --ray and without). Each time: exit 130 within
STOP_S, no process of its session outlives it, and OUT/.maskrt-batch/ holds only the driver's
lock: no temporary folder, partial file, unit lock or attempt counter (issue 22, item 9: SIGINT to
`maskrt batch --ray` left them until the next run; items 4-5 for batch). Then the same command
finishes the job, with outputs byte for byte those of `maskrt run`.

Only two cases run with `make test` (SIGINT to --ray while writing, SIGTERM to a local batch
while writing); the whole matrix is marked `signals` (make test-signals)."""

from __future__ import annotations

import signal

import pytest

from maskrt.cli import main
from maskrt.data import generate_video
from tests.distributed.conftest import SCORE, SIZE, assert_exactly_once, name_of
from tests.process_watch import Watched

STOP_S = 45.0
START_S = 300.0
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}
PHASES = ("ray", "writing", "writing-local")
DEFAULT = {("writing", "SIGINT"), ("writing-local", "SIGTERM")}
CASES = [pytest.param(phase, name, marks=() if (phase, name) in DEFAULT else pytest.mark.signals,
                      id=f"{name}-{phase}") for phase in PHASES for name in SIGNALS]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two 40-frame clips: long enough for a signal to find a worker writing."""
    folder = tmp_path_factory.mktemp("signal_videos")
    return [generate_video(folder / f"long{i}.mp4", num_frames=40, fps=10, size=SIZE, seed=30 + i) for i in range(2)]


def writing(out):
    """Some attempt has a temporary output under OUT/.maskrt-batch/tmp/."""
    return lambda: any(p.is_file() for p in (out / ".maskrt-batch" / "tmp").glob("*/*"))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("phase, name", CASES)
def test_a_signal_to_the_group_leaves_nothing_behind(small_engine, videos, tmp_path, phase, name):
    out = tmp_path / "out"
    args = ["batch", *map(str, videos), "--model", str(small_engine), "--out-dir", str(out), "--threads", "1",
            "--score-threshold", SCORE, "--quiet"]
    ray = [] if phase == "writing-local" else ["--ray", "--workers", "2"]
    watched = Watched([*args, *ray], tmp_path, env={"RAY_ADDRESS": "", "OMP_NUM_THREADS": "1"})
    try:
        if phase == "ray":
            watched.wait_until(lambda: any("gcs_server" in n for n in watched.names()), START_S, "Ray starting")
        else:
            watched.wait_until(writing(out), START_S, "a worker writing")
        watched.signal_group(SIGNALS[name])
        code, seconds = watched.wait_exit(STOP_S)
    except BaseException:
        watched.kill_everything()
        raise
    print(f"{name} while {phase}: exit {code} after {seconds:.1f} s")
    assert watched.survivors() == [], watched.output()[-3000:]
    assert code == 130 and watched.output().strip().endswith("maskrt: interrupted"), watched.output()[-3000:]
    assert "Traceback" not in watched.output()
    state = out / ".maskrt-batch"
    assert not state.exists() or sorted(p.name for p in state.iterdir()) == ["lock"]
    assert [p for p in out.rglob("*") if "partial" in p.name or p.suffix == ".tmp"] == [] if out.exists() else True
    if (phase, name) in DEFAULT:  # the job can be finished: every output once, as maskrt run writes it
        again = Watched([*args, *ray], tmp_path, env={"RAY_ADDRESS": "", "OMP_NUM_THREADS": "1"})
        assert again.process.wait(timeout=START_S) == 0, again.output()[-3000:]
        assert_exactly_once(out, videos, coco=False)
        for video in videos:
            reference = tmp_path / f"{video.stem}.jsonl"
            assert main(["run", str(video), "--model", str(small_engine), "--threads", "1", "--score-threshold",
                         SCORE, "--json", str(reference), "--quiet"]) == 0
            assert (out / f"{name_of(video)}.jsonl").read_bytes() == reference.read_bytes()
