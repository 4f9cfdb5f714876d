"""Detector intervals: the bundled model with tracking over synthetic clips, at interval 1, 2, 3, 5
and auto. What a user trades: output frames per second and engine calls per second against
tracking quality (HOTA and IDF1, by mask and box IoU, against the clips' ground truth).

Each round runs one whole clip (240x320, 30 fps, 90 frames, with crossings, an occluder, objects
leaving and returning, speed changes and a panning camera: clips.EVENTS; seeds 101 and 102 taken
in turn) through `seg.stream(track=True, interval=...)` with every frame's JSON record made, as
`maskrt run --track --json` does. Fixed intervals run offline (as fast as the machine goes);
"auto" plays the file as a live 30 fps source (real time), so its output rate is the source's at
best and its engine calls are what the machine allows meanwhile.

Group "tracking intervals 240x320"; the baseline is interval 1. extra_info: out_fps, engine_per_s,
mask_hota, mask_idf1, box_hota, box_idf1 (means over the clips of the last rounds), cpu_ms_per_frame
(the process's CPU time per output frame, all threads: much less sensitive than wall time to
other jobs on a shared machine), track_ms (the tracking step's own time per frame), dropped (real time). The chart: benchmarks/tracking/chart.py.
Run: .venv/bin/python -m pytest benchmarks/tracking/test_intervals.py --benchmark-only \\
         --benchmark-json=benchmarks/results/KIND/tracking.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import maskrt

from .clips import make_clip, run_clip, score

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
SEEDS = (101, 102)
FRAMES = 90
ROUNDS = 1  # rounds per clip: a round is a whole clip (minutes on a shared 2-core machine)

pytestmark = pytest.mark.skipif(not BUNDLED.exists(), reason=f"bundled model {BUNDLED.name} not built yet")


@pytest.fixture(scope="module")
def segmenter():
    return maskrt.load(BUNDLED, score_threshold=0.1)  # the tracker's low threshold: what --track loads


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking_clips")
    return [make_clip(folder, seed, FRAMES) for seed in SEEDS]


@pytest.mark.parametrize("interval", [1, 2, 3, 5, "auto"])
def test_interval(benchmark, segmenter, clips, interval):
    runs = []
    realtime = interval == "auto"

    def one_clip():
        clip = clips[len(runs) % len(clips)]
        runs.append((clip, run_clip(segmenter, clip, interval, realtime=realtime)))

    benchmark.group = "tracking intervals 240x320"
    benchmark.extra_info["baseline"] = interval == 1
    benchmark.extra_info["interval"] = str(interval)
    benchmark.pedantic(one_clip, rounds=ROUNDS * len(clips), iterations=1, warmup_rounds=0)
    last = runs[-len(clips):]
    scores = [score(run.records, clip) for clip, run in last]
    info = benchmark.extra_info
    info["out_fps"] = round(float(np.mean([run.fps for _, run in runs])), 2)
    info["engine_per_s"] = round(float(np.mean([run.engine_per_s for _, run in runs])), 2)
    for by in ("mask", "box"):
        info[f"{by}_hota"] = round(float(np.mean([s[by]["HOTA"] for s in scores])), 4)
        info[f"{by}_idf1"] = round(float(np.mean([s[by]["IDF1"] for s in scores])), 4)
    info["cpu_ms_per_frame"] = round(float(np.mean([run.cpu_ms_per_frame for _, run in runs])), 2)
    info["track_ms"] = round(1000 * sum(r.tracking_seconds for _, r in runs) / sum(r.frames for _, r in runs), 3)
    info["dropped"] = int(sum(run.dropped for _, run in runs))
    assert all(run.frames + run.dropped == FRAMES for _, run in runs)
