"""Shared benchmark fixtures. Timings on a 2-core shared machine are noisy: medians over rounds,
and every maskrt figure is compared with a baseline measured in the same run (same group)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

THREADS = int(os.environ.get("MASKRT_BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)


def bench_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 RGB image with smooth structure (random weights still see 'objects')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = rng.integers(0, 50, size=(height, width, 3)).astype(np.float32)
    for _ in range(8):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.05, 0.3) * max(height, width)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < r * r] += rng.uniform(60, 200, size=3)
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def threads() -> int:
    return THREADS


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the settings every figure depends on and the machine precisely (model, cores, ISA
    flags that select kernel paths, OpenVINO's capabilities): the report prints them."""
    from maskrt.machine import describe

    machine_info["maskrt"] = {"threads": THREADS, "torch": torch.__version__}
    machine_info["maskrt_cpu"] = describe().as_dict()
