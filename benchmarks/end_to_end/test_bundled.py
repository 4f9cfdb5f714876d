"""The bundled model (shapes_r18fpn64) at its own size, 320x320, its CPU engines (fp32, int8;
built and cached as maskrt.load builds them), default settings: one call plus the fused paste
timed whole, with each step's median ms and the glue's share in extra_info (benchmarks/tools/glue.py),
group "glue shapes-r18fpn64 320x320". The int8 engine is built on first use (~2 min)."""

from __future__ import annotations

import pytest

import maskrt
from benchmarks.conftest import THREADS
from benchmarks.tools.glue import breakdown
from maskrt.builders.calibration import bundled_checkpoint
from maskrt.data import make_scene

GROUP = "glue shapes-r18fpn64 320x320"


@pytest.fixture(scope="module")
def scene():
    return make_scene(987_654, 0, size=(320, 320)).image  # a seed outside training and validation


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_bundled_engine_glue(benchmark, scene, precision):
    seg = maskrt.load(bundled_checkpoint(), precision=precision, num_threads=THREADS, progress=False)
    benchmark.group = GROUP
    benchmark.extra_info.update(precision=precision, detections=len(seg(scene)),
                                proposals=seg.backend.detector.proposals.params.post_nms_top_n,
                                **breakdown(seg, scene, calls=20))
    benchmark.pedantic(lambda: seg(scene).instances, rounds=20, warmup_rounds=2)
