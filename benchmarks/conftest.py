"""Shared benchmark fixtures. Timings on a 2-core shared machine are noisy: medians over rounds,
and every maskrt figure is compared with a baseline measured in the same run (same group)."""

from __future__ import annotations

import os

import pytest
import torch

from benchmarks.tools.images import bench_image  # noqa: F401  (the benchmarks import it from here)

THREADS = int(os.environ.get("MASKRT_BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def threads() -> int:
    return THREADS


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the settings every figure depends on and the machine precisely (model, cores, ISA
    flags that select kernel paths, OpenVINO's capabilities): the report prints them."""
    from maskrt.machine import describe

    machine_info["maskrt"] = {"threads": THREADS, "torch": torch.__version__}
    machine_info["maskrt_cpu"] = describe().as_dict()
