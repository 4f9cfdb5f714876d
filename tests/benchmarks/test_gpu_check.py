"""benchmarks/gpu/check.py (make gpu-check) as the lent GPU machine will run it, without a GPU here.

- its refusals, with only the GPU machine's packages: one line, exit 2, nothing written, when CUDA
  or torch is missing;
- every check on CPU tensors (Triton under TRITON_INTERPRET=1, torchvision's CPU ops as the
  oracle, tiny sizes), so a check that would crash on first contact crashes here first;
- in an environment of torch, torchvision, triton and numpy only (and what they need: a python -S
  whose path holds links to those distributions' files; no pytest, no onnx, no openvino), with
  CUDA faked (maskrt.gpu_verify.fake_cuda: fake CUDA tensors, kernel launches recorded): every
  import it needs resolves, its report folder ($OUT) fills as checks finish, and a run killed
  midway (held at a check by its test hook, then SIGKILL) leaves a readable partial report.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (the kernels import it lazily)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from benchmarks.gpu import check  # noqa: E402
from benchmarks.gpu.check_items import ITEMS  # noqa: E402
from tests.isolated import site_of  # noqa: E402
from tests.serve.conftest import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GPU_MACHINE = ("torch", "torchvision", "triton", "numpy")  # what the lent GPU machines carry (+ dependencies)

LAUNCHER = """# python -S launcher.py ARGS = python -m benchmarks.gpu.check ARGS (CUDA faked when FAKE_CUDA is set)
import os, sys

from benchmarks.gpu import check

if os.environ.get("FAKE_CUDA"):
    import torch

    from maskrt.gpu_verify.fake_cuda import fake_cuda

    check.refusal = lambda: None  # as if torch.cuda.is_available() (patching that makes torch initialise CUDA)
    torch.cuda.get_device_name = lambda *a: "fake GPU (maskrt.gpu_verify.fake_cuda)"
    torch.cuda.get_device_capability = lambda *a: (9, 0)
    fake = fake_cuda(allow_host_copies=True)
    setup = fake.__enter__().setup()
    setup.__enter__()  # copies unchecked: this checks the script's imports and report, not the kernels
sys.exit(check.main(sys.argv[1:]))
"""


def gpu_machine_run(tmp_path: Path, fake_cuda: bool, distributions=GPU_MACHINE, **environ) -> tuple[list, dict]:
    """(command, environment) running `python -m benchmarks.gpu.check` in a python that sees only
    the standard library, `distributions` (and their requirements) and the source tree (python -S:
    no site-packages of its own)."""
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "OUT", "PYTHONPATH")}
    env.update(PYTHONPATH=f"{site_of(tmp_path, distributions)}{os.pathsep}{ROOT}", **environ)
    if fake_cuda:
        env["FAKE_CUDA"] = "1"
    return [sys.executable, "-S", str(tmp_path / "launcher.py")], env


def test_without_a_gpu_it_says_so_in_one_line_and_exits_2(tmp_path):
    cmd, env = gpu_machine_run(tmp_path, False, CUDA_VISIBLE_DEVICES="")  # no GPU, also on a GPU machine
    out = subprocess.run([*cmd, "--out", str(tmp_path / "r")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no CUDA GPU" in out.stderr and out.stdout == ""
    assert not (tmp_path / "r").exists()


def test_without_torch_it_says_so_in_one_line_and_exits_2(tmp_path):
    cmd, env = gpu_machine_run(tmp_path, False, distributions=("numpy",), OUT=str(tmp_path / "r"))
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.strip().count("\n") == 0 and "has no torch, torchvision, triton (" in out.stderr
    assert not (tmp_path / "r").exists()


def test_every_check_runs_on_cpu_tensors(tmp_path):
    report = check.run_checks("cpu", tiny=True, out=tmp_path)
    failures = [(r["section"], r["name"], r.get("error"), r.get("traceback")) for r in report["checks"] if not r["ok"]]
    assert failures == []
    assert [(r["section"], r["name"]) for r in report["checks"]] == [(s, n) for s, n, _ in ITEMS]
    assert report["complete"] and report["passed"] and report["environment"]["device"] == "cpu"
    assert report["environment"]["threads"] == check.cores()
    table = (tmp_path / "gpu-check.md").read_text()
    assert "all checks passed" in table and all(n in table for _, n, _ in ITEMS)
    assert json.loads((tmp_path / "gpu-check.json").read_text())["passed"] is True
    lines = [json.loads(line) for line in (tmp_path / "gpu-check.jsonl").read_text().splitlines()]
    assert len(lines) == len(ITEMS) + 2 and lines[-1] == {"complete": True, "passed": True}


def test_a_spent_budget_leaves_the_rest_not_run(tmp_path):
    report = check.run_checks("cpu", tiny=True, only="paste and fused", out=tmp_path, budget_s=-1.0)
    [record] = report["checks"]
    assert record["not_run"].startswith("time budget") and not report["complete"] and not report["passed"]
    assert "not run: time budget" in (tmp_path / "gpu-check.md").read_text()


def test_on_the_gpu_machines_packages_with_fake_cuda_every_import_resolves(tmp_path):
    """Every check runs to its end or to its first use of a fake tensor's values (an error here, as
    no data exists): none may end on a missing module, and the whole report is written to $OUT."""
    out = tmp_path / "out"
    cmd, env = gpu_machine_run(tmp_path, True, OUT=str(out))
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 1, run.stderr[-3000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["environment"]["gpu"].startswith("fake GPU") and len(report["checks"]) == len(ITEMS)
    assert report["environment"]["threads"] == check.cores()
    assert report["checks"][0]["name"] == "imports" and report["checks"][0]["ok"], report["checks"][0]
    missing = [(r["name"], r["error"]) for r in report["checks"] if "No module named" in r.get("error", "")]
    assert missing == []


def test_killed_midway_the_report_holds_what_finished(tmp_path):
    hold = tmp_path / "hold"
    hold.mkdir()
    out = tmp_path / "out"
    cmd, env = gpu_machine_run(tmp_path, True, OUT=str(out), **{check.HOLD_ENV: f"3@{hold}"})
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (hold / "held").exists(), timeout_s=600, what="the run to reach check 3")
    finally:
        proc.kill()
        proc.wait(timeout=60)
    lines = [json.loads(line) for line in (out / "gpu-check.jsonl").read_text().splitlines()]
    assert "environment" in lines[0] and [r["name"] for r in lines[1:]] == [n for _, n, _ in ITEMS[:2]]
    report = json.loads((out / "gpu-check.json").read_text())
    assert len(report["checks"]) == 2 and report["complete"] is False and report["passed"] is False
    assert f"INCOMPLETE: 2 of {len(ITEMS)} checks reported" in (out / "gpu-check.md").read_text()


@pytest.mark.parametrize("args,environ,where", [
    ([], {"OUT": "/runner/out"}, "/runner/out"),  # a remote runner collects $OUT
    (["GPU_CHECK_OUT=/runner/out"], {}, "/runner/out"),  # the documented form
    ([], {}, "gpu-check"),
])
def test_make_gpu_check_writes_where_the_runner_collects(args, environ, where):
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_OUT")} | environ
    out = subprocess.run(["make", "-n", "--no-print-directory", "gpu-check", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"-m benchmarks.gpu.check --out {where}" in out.stdout, out.stdout + out.stderr
