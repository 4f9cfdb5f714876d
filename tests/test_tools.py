"""tools/avx2_code_paths.sh stays make test's selection, leaves out only tests that exist, and its
exports do hold the libraries to AVX2 code."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "avx2_code_paths.sh"


def script_exports() -> dict[str, str]:
    """NAME=VALUE of every `export` line of the script (comments dropped)."""
    env = {}
    for line in SCRIPT.read_text().splitlines():
        if line.startswith("export "):
            for word in shlex.split(line[len("export "):], comments=True):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def test_the_script_runs_make_test_s_selection():
    makefile = (ROOT / "Makefile").read_text()
    selection = re.search(r"^test: .*\n\t\$\(PY\) -m pytest -q tests (-m \"[^\"]+\")", makefile, re.M).group(1)
    assert f"tests {selection}" in SCRIPT.read_text()


def test_every_deselected_test_exists():
    deselected = re.findall(r"--deselect (\S+)", SCRIPT.read_text())
    assert deselected
    for node in deselected:
        path, _, name = node.partition("::")
        assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.M), node


def test_the_exports_hold_torch_numba_and_numpy_to_avx2():
    probe = """
import numba, numpy as np, torch
@numba.njit
def twice(a, out):
    for i in range(a.shape[0]):
        out[i] = a[i] * 2.0 + 1.0
a = np.ones(4096, np.float32)
twice(a, np.empty_like(a))
asm = twice.inspect_asm(twice.signatures[0])
from numpy._core._multiarray_umath import __cpu_features__ as npy
print(torch.backends.cpu.get_cpu_capability(), "zmm" in asm, "ymm" in asm, npy.get("X86_V4"))
"""  # X86_V4: numpy 2.4's AVX-512 dispatch group
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **script_exports()}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["AVX2", "False", "True", "False"], out.stdout
