"""Synthetic pytest-benchmark JSON documents, shaped like what `--benchmark-json` writes."""

from __future__ import annotations

import json

import numpy as np
import pytest


def bench_entry(name: str, group: str, data, extra_info: dict | None = None, raw: bool = True) -> dict:
    data = [float(x) for x in data]
    stats = {"min": min(data), "max": max(data), "mean": float(np.mean(data)), "median": float(np.median(data)),
             "rounds": len(data), "iterations": 1, "stddev": float(np.std(data)), "ops": 1 / float(np.mean(data))}
    if raw:
        stats["data"] = data
    return {"group": group, "name": name, "fullname": f"benchmarks/test_x.py::{name}", "params": None,
            "param": None, "extra_info": dict(extra_info or {}), "options": {"timer": "perf_counter"},
            "stats": stats}


def results_doc(entries: list[dict]) -> dict:
    return {
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_implementation": "CPython",
                         "python_version": "3.11.7"},
        "commit_info": {"id": "0123456789abcdef", "dirty": False},
        "benchmarks": entries,
        "datetime": "2026-01-01T00:00:00+00:00",
        "version": "5.3.1",
    }


def around(median: float, n: int = 21, spread: float = 0.02, seed: int = 0) -> np.ndarray:
    """n timings with exactly `median` as their median (odd n, symmetric around it)."""
    rng = np.random.default_rng(seed)
    half = np.sort(rng.uniform(0, spread, n // 2))
    return np.concatenate([median * (1 - half), [median], median * (1 + half)])


@pytest.fixture
def write_doc(tmp_path):
    def write(entries: list[dict], name: str = "run.json"):
        path = tmp_path / name
        path.write_text(json.dumps(results_doc(entries)))
        return path

    return write
