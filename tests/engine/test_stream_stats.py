"""Hand-over queues and stage statistics."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from maskrt.engine.stream.queues import ABORT, END, BoundedQueue, LatestSlot
from maskrt.engine.stream.stats import StageTimes, StreamStats


def test_latest_slot_keeps_newest_and_counts_drops():
    slot, abort = LatestSlot(), threading.Event()
    for i in range(5):
        assert slot.put(i, abort)
    assert slot.get(abort) == 4 and slot.dropped == 4
    slot.put(5, abort)
    slot.close(abort)
    assert slot.get(abort) == 5  # an item put before close is still delivered
    assert slot.get(abort) is END
    abort.set()
    assert slot.get(abort) is ABORT


def test_latest_slot_with_capacity_keeps_the_newest_items_in_order():
    slot, abort = LatestSlot(3), threading.Event()
    for i in range(5):
        assert slot.put(i, abort)
    assert slot.dropped == 2  # 0 and 1, the oldest, made room
    assert [slot.get(abort) for _ in range(3)] == [2, 3, 4]
    slot.put(5, abort)
    slot.close(abort)
    assert slot.get(abort) == 5 and slot.get(abort) is END


def test_bounded_queue_applies_back_pressure_and_aborts():
    q, abort = BoundedQueue(2), threading.Event()
    assert q.put(1, abort) and q.put(2, abort)
    blocked = threading.Thread(target=q.put, args=(3, abort))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # full: the producer waits
    assert q.get(abort) == 1
    blocked.join(1)
    assert not blocked.is_alive()
    abort.set()
    assert q.put(4, abort) is False
    assert BoundedQueue(1).get(abort) is ABORT


def test_stage_percentiles_known_values():
    t = StageTimes()
    for ms in range(1, 101):  # 1..100 ms
        t.add(ms / 1000)
    s = t.summary()
    # numpy's linear percentile of 1..100: p50 = 50.5, p90 = 90.1, p99 = 99.01
    assert s["count"] == 100 and s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["max_ms"] == pytest.approx(100) and s["mean_ms"] == pytest.approx(50.5)
    assert StageTimes().summary()["count"] == 0


def test_stage_times_memory_is_bounded():
    t = StageTimes(capacity=8)
    for i in range(1000):
        t.add(1.0 if i < 992 else 2.0)
    assert t.count == 1000 and t.samples().shape == (8,)
    assert t.summary()["p50_ms"] == pytest.approx(2000)  # percentiles over the most recent samples
    assert t.total == pytest.approx(992 + 16)


def test_stream_stats_json(tmp_path):
    stats = StreamStats()
    stats.add("infer", 0.25)
    stats.frame_done(0.3)
    stats.write_json(tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["frames"] == 1 and data["stages"]["infer"]["p50_ms"] == pytest.approx(250)
    assert set(data["stages"]) == {"decode", "preprocess", "infer", "postprocess", "render", "encode", "latency"}
    assert "infer" in stats.format_table() and "render" not in stats.format_table()
    assert np.isfinite(stats.fps())
