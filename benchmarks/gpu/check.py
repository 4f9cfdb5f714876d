"""One-shot GPU check, for a lent GPU machine: `make gpu-check GPU_CHECK_OUT=$OUT`.

That is `PYTHONPATH=. python3 -m benchmarks.gpu.check --out $OUT` (without --out: $OUT when set, else
./gpu-check), from the source tree, with the machine's own torch, torchvision and triton (no
TensorRT, no package index, nothing installed, no pytest). It writes into the folder, as the
results come: gpu-check.jsonl (one line per finished check, appended and fsync'd), and
gpu-check.json + gpu-check.md (rewritten after each check): a run killed at any point leaves
every finished check in all three, the summary saying how far it got. Checks, in this order:

1. kernels on CUDA tensors against torchvision's CUDA ops (the `reference` implementations on
   CUDA): RoIAlign S=7/14 fp32/fp16 (tolerance; bit-exact against torchvision's CPU kernel in
   fp32, the claim of roi_align/triton.py), NMS dense and per-class paths (identical kept set and
   order), paste and the fused paste (bit-exact against the CPU paste where claimed);
2. the TensorRT plugins' ahead-of-time launches (maskrt.tensorrt.aot.run: the kernels, grids and
   scalars a plan holds) against the same oracles - what a plan runs, without TensorRT;
3. the whole model with the Triton ops on CUDA against torchvision on CUDA (R50-FPN, seeded):
   the CPU parity criteria of tests/model/test_parity.py (tests/detections_compare.py);
4. timings (CUDA events, median): kernels against torchvision's CUDA ops, the NMS paths (the
   greedy scan's one block with a barrier per box, the one-program AOT kernel), the torch backend
   at 800x1333, batch 1 and 8.
Threads: one per core. A time budget (BUDGET_S, the slot is 8 minutes with Triton's compiles)
leaves later checks "not run" rather than losing the report. Without torch, triton or a CUDA GPU
it says so in one line and exits 2. Exit 1 if a check failed or did not run, 0 otherwise.
`run_checks(device="cpu", tiny=True)` runs the same code on CPU tensors under TRITON_INTERPRET=1
with tiny sizes (tests/benchmarks/test_gpu_check.py), so the script cannot rot unseen.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

BUDGET_S = 420.0  # seconds of checks; with start-up and the first compiles under the 8-minute slot
HOLD_ENV = "MASKRT_GPU_CHECK_HOLD"  # test hook: "K@DIR" waits at the start of check K (see _hold)


def refusal() -> str | None:
    """One line saying why nothing can be checked with this python, or None."""
    missing = []
    for module in ("numpy", "torch", "torchvision", "triton"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        return (f"gpu-check: {sys.executable} has no {', '.join(missing)} (the GPU machine's own python with "
                "torch, torchvision and triton is needed); nothing was checked")
    import torch

    if not torch.cuda.is_available():
        return "gpu-check: no CUDA GPU here (torch.cuda.is_available() is False); nothing was checked"
    return None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def environment(device) -> dict:
    import torch
    import torchvision

    env = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
           "device": str(device), "threads": torch.get_num_threads()}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError as exc:
        env["triton"] = f"missing ({exc})"
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["capability"] = "sm_%d%d" % torch.cuda.get_device_capability(device)
    return env


class Report:
    """The report as it grows; with a folder, every change is on disk before the next check starts."""

    def __init__(self, environment: dict, tiny: bool, out: Path | None = None, planned: int = 0):
        self.data = {"environment": environment, "tiny": tiny, "planned": planned, "checks": [],
                     "complete": False, "passed": False}
        self.out, self.log = out, None
        if out is not None:
            from maskrt.safeio import AppendLog

            out.mkdir(parents=True, exist_ok=True)
            (out / "gpu-check.jsonl").unlink(missing_ok=True)
            self.log = AppendLog(out / "gpu-check.jsonl")
            self.log.open()
            self.log.append({"environment": environment})
            self._write()

    def add(self, record: dict) -> None:
        self.data["checks"].append(record)
        if self.log is not None:
            self.log.append(record)
            self.log.sync()
            self._write()

    def finish(self) -> dict:
        checks = self.data["checks"]
        self.data["complete"] = len(checks) == self.data["planned"] and not any(r.get("not_run") for r in checks)
        self.data["passed"] = self.data["complete"] and all(r["ok"] for r in checks)
        if self.log is not None:
            self.log.append({"complete": self.data["complete"], "passed": self.data["passed"]})
            self.log.close()
            self._write()
        return self.data

    def _write(self) -> None:
        from maskrt.safeio import write_atomic

        write_atomic(self.out / "gpu-check.json", json.dumps(self.data, indent=1, default=str).encode())
        write_atomic(self.out / "gpu-check.md", markdown(self.data).encode())


def run_checks(device: str = "cuda", tiny: bool = False, only: str = "", out: Path | None = None,
               budget_s: float = BUDGET_S) -> dict:
    """Every check of the module docstring (or those whose 'section name' contains `only`); returns
    the report, written to `out` as it grows when given."""
    import torch

    from benchmarks.gpu import check_items as items

    torch.set_num_threads(cores())
    dev = torch.device(device)
    selected = [item for item in items.ITEMS if not only or only in f"{item[0]} {item[1]}"]
    report = Report(environment(dev), tiny, out, planned=len(selected))
    start = time.perf_counter()
    for k, (section, name, fn) in enumerate(selected, start=1):
        _hold(k)
        t0 = time.perf_counter()
        if t0 - start > budget_s:
            record = {"ok": False, "not_run": f"time budget ({budget_s:.0f} s) spent"}
        else:
            record = _run_one(fn, dev, tiny)
        record.update(section=section, name=name, seconds=round(time.perf_counter() - t0, 2))
        report.add(record)
        status = "ok  " if record["ok"] else ("SKIP" if record.get("not_run") else "FAIL")
        why = "" if record["ok"] else f" - {record.get('error') or record['not_run']}"
        print(f"{status} {section}: {name} ({record['seconds']} s){why}", flush=True)
    return report.finish()


def _run_one(fn, dev, tiny) -> dict:
    try:
        return {"ok": True, **(fn(dev, tiny) or {})}
    except AssertionError as exc:
        return {"ok": False, "error": f"check failed: {exc}"}
    except Exception as exc:  # a crash is a failed check too; the others still run
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(-3)}


def _hold(k: int) -> None:
    """Test hook (tests/benchmarks/test_gpu_check.py): with MASKRT_GPU_CHECK_HOLD="K@DIR", at the
    start of check K write DIR/held and wait for DIR/release (at most 10 minutes), so a test can
    kill the run midway without timing guesses."""
    spec = os.environ.get(HOLD_ENV, "")
    if not spec.startswith(f"{k}@"):
        return
    folder = Path(spec.split("@", 1)[1])
    (folder / "held").write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def markdown(report: dict) -> str:
    env = report["environment"]
    done = len(report["checks"])
    if report["complete"]:
        summary = "all checks passed" if report["passed"] else "SOME CHECKS FAILED"
    else:
        summary = f"INCOMPLETE: {done} of {report['planned']} checks reported (the run ended early or is running)"
    lines = ["# maskrt gpu-check", "", " · ".join(f"{k} {v}" for k, v in env.items()), "", f"**{summary}**", "",
             "| section | check | result | seconds | figures |", "|---|---|---|---|---|"]
    for r in report["checks"]:
        figures = ", ".join(f"{k} {v}" for k, v in r.items()
                            if k not in ("ok", "section", "name", "seconds", "error", "traceback", "not_run"))
        result = "ok" if r["ok"] else (f"not run: {r['not_run']}" if r.get("not_run") else f"FAIL: {r['error']}")
        lines.append(f"| {r['section']} | {r['name']} | {result.replace('|', '/')} | {r['seconds']} | {figures} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check",
                        help="folder for gpu-check.jsonl, .json and .md (default: $OUT, else gpu-check)")
    parser.add_argument("--only", default="", help="run only the checks whose 'section name' contains this")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds after which checks are not started")
    args = parser.parse_args(argv)
    problem = refusal()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    report = run_checks("cuda", only=args.only, out=Path(args.out), budget_s=args.budget)
    verdict = "passed" if report["passed"] else ("FAILED" if report["complete"] else "INCOMPLETE")
    print(f"gpu-check: {verdict}; report in {args.out}/gpu-check.md")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
