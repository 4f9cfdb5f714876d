"""The tracking benchmark's helpers: the greedy frame-to-frame baseline and the interval chart."""

from __future__ import annotations

import struct

import numpy as np
from pycocotools import mask as mask_utils

from benchmarks.tracking.chart import interval_results, main as chart_main
from benchmarks.tracking.clips import greedy_records

from .conftest import around, bench_entry


def instance(x: int, y: int, w: int = 10, h: int = 10) -> dict:
    m = np.zeros((40, 60), np.uint8)
    m[y:y + h, x:x + w] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"bbox": [x, y, w, h], "score": 0.9, "category_id": 1,
            "segmentation": {"size": [40, 60], "counts": rle["counts"].decode()}}


def ids(records) -> list[list[int]]:
    return [[inst["track_id"] for inst in r["instances"]] for r in records]


def test_greedy_follows_overlaps_frame_to_frame_and_forgets_the_rest():
    frames = [[instance(0, 0), instance(30, 0)],
              [instance(31, 1), instance(1, 1)],  # both moved a pixel; listed the other way round
              [instance(2, 2)],                   # the second object missed for a frame
              [instance(3, 3), instance(32, 2)]]  # back: the greedy matcher has no memory, a new id
    records = [{"frame": i, "time": i / 30, "instances": inst} for i, inst in enumerate(frames)]
    assert ids(greedy_records(records)) == [[1, 2], [2, 1], [1], [1, 3]]
    # IoU 0.25 between a 10 px square and itself moved 6 px: under 0.5, so a new id every frame
    drifting = [{"frame": i, "time": 0.0, "instances": [instance(6 * i, 0)]} for i in range(3)]
    assert ids(greedy_records(drifting)) == [[1], [2], [3]]
    assert ids(greedy_records(drifting, min_iou=0.2)) == [[1], [1], [1]]


def test_interval_chart_is_drawn_from_the_benchmark_json(write_doc, tmp_path):
    group = "tracking intervals 240x320"
    entries = [bench_entry(f"test_interval[{i}]", group, around(1.0 / (k + 1)),
                           {"interval": str(i), "out_fps": 10.0 * (k + 1), "engine_per_s": 10.0 / (k + 1),
                            "mask_hota": 0.8 - 0.05 * k, "mask_idf1": 0.9 - 0.05 * k, "cpu_ms_per_frame": 40.0 / (k + 1)})
               for k, i in enumerate([1, 2, 3, 5, "auto"])]
    path = write_doc(entries + [bench_entry("test_other", "other", around(1.0))])
    name, results = interval_results(path)
    assert name == group and [r.extra_info["interval"] for r in results] == ["1", "2", "3", "5", "auto"]
    out = tmp_path / "chart.png"
    assert chart_main([str(path), "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1300 and height == 380
    assert chart_main([str(write_doc([bench_entry("x", "other", around(1.0))], "none.json")), "-o",
                       str(tmp_path / "no.png")]) == 2
    assert not (tmp_path / "no.png").exists()
