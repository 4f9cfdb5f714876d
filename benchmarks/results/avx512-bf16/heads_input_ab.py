"""Same-process A/B of the CPU engine's head-stage input path (FRAME-TIME.md, 6b).

"old": the box and mask stages compiled with NCHW input (openvino_backend.CHANNELS_LAST_STAGES
emptied while loading), so RoIAlign's channels_last output is transposed on the host and
RoIAlign allocates its output; "new": as shipped. Both backends of one engine in one process,
calls alternating in blocks, step medians (benchmarks/tools/glue.py StepTimes).

    PYTHONPATH=. .venv/bin/python benchmarks/results/avx512-bf16/heads_input_ab.py r50 ENGINE  # R50 800x1333, 5 x 2 calls
    PYTHONPATH=. .venv/bin/python benchmarks/results/avx512-bf16/heads_input_ab.py bundled    # int8 bundled, 10 x 10 calls
"""

import json
import sys

import maskrt
from benchmarks.conftest import bench_image
from benchmarks.tools.glue import StepTimes
from maskrt.builders.calibration import bundled_checkpoint
from maskrt.data import make_scene
from maskrt.engine.backends import openvino_backend


def load(*args, **kwargs):
    return maskrt.load(*args, num_threads=2, **kwargs)


def main(which: str, engine: str | None = None) -> None:
    if which == "r50":
        args, kwargs, image, rounds, calls = (engine,), {}, bench_image(800, 1333), 5, 2
    else:
        args, kwargs = (bundled_checkpoint(),), {"precision": "int8", "progress": False}
        image, rounds, calls = make_scene(987_654, 0, size=(320, 320)).image, 10, 10
    shipped = openvino_backend.CHANNELS_LAST_STAGES
    openvino_backend.CHANNELS_LAST_STAGES = ()
    old = load(*args, **kwargs)
    openvino_backend.CHANNELS_LAST_STAGES = shipped
    timers = {"old": StepTimes(old), "new": StepTimes(load(*args, **kwargs))}
    for timer in timers.values():
        timer.__enter__()
        timer.call(image)
        timer.samples.clear()
    for _ in range(rounds):
        for timer in timers.values():
            for _ in range(calls):
                timer.call(image)
    for label, timer in timers.items():
        print(label, json.dumps(timer.medians_ms()))


if __name__ == "__main__":
    main(*sys.argv[1:])
