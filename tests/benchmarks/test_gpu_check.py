"""benchmarks/gpu/check.py (make gpu-check): its no-GPU answer, and every check run on CPU tensors.

The checks are written for CUDA tensors on the day a GPU is lent; here the same code runs with
device="cpu" (Triton kernels under TRITON_INTERPRET=1, torchvision's CPU ops as the oracle) and
tiny sizes, so a check that would crash on first contact crashes here first.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (the kernels import it lazily)

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.gpu import check  # noqa: E402
from benchmarks.gpu.check_items import ITEMS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_it_says_so_in_one_line_and_exits_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}  # no GPU, also on a GPU machine
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu.check", "--out", str(tmp_path / "r")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no CUDA GPU" in out.stderr and out.stdout == ""
    assert not (tmp_path / "r").exists()


def test_every_check_runs_on_cpu_tensors(tmp_path):
    report = check.run_checks("cpu", tiny=True)
    failures = [(r["section"], r["name"], r.get("error"), r.get("traceback")) for r in report["checks"] if not r["ok"]]
    assert failures == []
    assert [(r["section"], r["name"]) for r in report["checks"]] == [(s, n) for s, n, _ in ITEMS]
    assert all(r["seconds"] >= 0 for r in report["checks"]) and report["environment"]["device"] == "cpu"
    check.write(report, tmp_path)
    table = (tmp_path / "gpu-check.md").read_text()
    assert "all checks passed" in table and all(n in table for _, n, _ in ITEMS)
    assert (tmp_path / "gpu-check.json").read_text().startswith("{")
