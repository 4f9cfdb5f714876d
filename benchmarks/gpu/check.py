"""One-shot GPU check: `make gpu-check` (python -m benchmarks.gpu.check --out DIR) on a CUDA machine.

Runs from the source tree with the machine's own torch, torchvision and triton (no TensorRT, no
package registry, nothing to install) and writes DIR/gpu-check.json and DIR/gpu-check.md:

1. kernels on CUDA tensors against torchvision's CUDA ops (the `reference` implementations on
   CUDA): RoIAlign S=7/14 fp32/fp16 (tolerance; bit-exact against torchvision's CPU kernel in
   fp32, the claim of roi_align/triton.py), NMS dense and per-class paths (identical kept set and
   order), paste and the fused paste (bit-exact against the CPU paste where claimed);
2. the whole model with the Triton ops on CUDA against torchvision on CUDA (R50-FPN, seeded):
   the CPU parity criteria of tests/model/test_parity.py (tests/detections_compare.py);
3. kernel timings against torchvision's CUDA ops (CUDA events, median);
4. the torch backend's latency with the Triton ops at 800x1333 (R50, batch 1 and 8).
Without a GPU it says so in one line and exits 2. Exit 1 if a check failed, 0 otherwise.
`run_checks(device="cpu", tiny=True)` runs the same code on CPU tensors under TRITON_INTERPRET=1
with tiny sizes (the model checks with the cpu kernels: the whole model through the interpreter
takes minutes) in tests/benchmarks/test_gpu_check.py, so the script cannot rot unseen.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch


def environment(device: torch.device) -> dict:
    import torchvision

    env = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
           "device": str(device)}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError as exc:
        env["triton"] = f"missing ({exc})"
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["capability"] = "sm_%d%d" % torch.cuda.get_device_capability(device)
    return env


def run_checks(device: str = "cuda", tiny: bool = False, only: str = "") -> dict:
    """Every check of the module docstring; returns the report (also what gets written)."""
    from benchmarks.gpu import check_items as items

    dev = torch.device(device)
    report = {"environment": environment(dev), "tiny": tiny, "checks": []}
    for section, name, fn in items.ITEMS:
        if only and only not in f"{section} {name}":
            continue
        start = time.perf_counter()
        try:
            record = {"ok": True, **(fn(dev, tiny) or {})}
        except AssertionError as exc:
            record = {"ok": False, "error": f"check failed: {exc}"}
        except Exception as exc:  # a crash is a failed check too; the others still run
            record = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(-3)}
        record.update(section=section, name=name, seconds=round(time.perf_counter() - start, 2))
        report["checks"].append(record)
        print(f"{'ok  ' if record['ok'] else 'FAIL'} {section}: {name} ({record['seconds']} s)"
              + ("" if record["ok"] else f" - {record['error']}"), flush=True)
    report["passed"] = all(r["ok"] for r in report["checks"])
    return report


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = ["# maskrt gpu-check", "", " · ".join(f"{k} {v}" for k, v in env.items()), "",
             f"**{'all checks passed' if report['passed'] else 'SOME CHECKS FAILED'}**", "",
             "| section | check | result | seconds | figures |", "|---|---|---|---|---|"]
    for r in report["checks"]:
        figures = ", ".join(f"{k} {v}" for k, v in r.items()
                            if k not in ("ok", "section", "name", "seconds", "error", "traceback"))
        result = "ok" if r["ok"] else f"FAIL: {r['error']}".replace("|", "/")
        lines.append(f"| {r['section']} | {r['name']} | {result} | {r['seconds']} | {figures} |")
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("gpu-check.json", json.dumps(report, indent=1, default=str)),
                       ("gpu-check.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check", help="folder for gpu-check.json and gpu-check.md")
    parser.add_argument("--only", default="", help="run only the checks whose 'section name' contains this")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here (torch.cuda.is_available() is False); nothing was checked", file=sys.stderr)
        return 2
    report = run_checks("cuda", only=args.only)
    write(report, Path(args.out))
    print(f"gpu-check: {'passed' if report['passed'] else 'FAILED'}; report in {args.out}/gpu-check.md")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
