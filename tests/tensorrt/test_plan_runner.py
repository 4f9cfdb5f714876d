"""The plan-only run path (maskrt/tensorrt/plan_runner.py) runs what the Triton repository holds, in a
process without torch.

The runner is started in a python that has numpy only (python -S, tests.isolated), with stand-ins
for the tensorrt runtime and the CUDA runtime library (tests/tensorrt/standin_runtime.py: numpy
only) whose engine checks every input against the tensors the repository's config.pbtxt declares
(parsed here with Triton's ModelConfig). It loads the plans from the repository `maskrt export
--triton-repo` wrote, feeds both, downloads the outputs, and never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskrt.tensorrt import triton_client, triton_repo
from tests.isolated import site_of

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, os, sys
import numpy as np
from tests.tensorrt import standin_runtime

cuda = standin_runtime.FakeCuda()
trt = standin_runtime.module(json.loads(os.environ["EXPECTED"]), cuda)
from maskrt.tensorrt.plan_runner import PlanRunner

runner = PlanRunner(sys.argv[1], trt=trt, cuda=cuda)
found = runner(np.load(sys.argv[2]), masks=True)
print(json.dumps({"shapes": {k: list(v.shape) for k, v in found.items()}, "labels": found["labels"].tolist(),
                  "uploads": [list(s) for s in cuda.uploads], "torch": "torch" in sys.modules,
                  "triton": "triton" in sys.modules}))
"""


@pytest.fixture(scope="module")
def repo(trt_plan_engine, tmp_path_factory):
    return triton_repo.export_triton_repo(trt_plan_engine, tmp_path_factory.mktemp("triton") / "models")


def declared(repo: Path) -> dict:
    """plan sha256 -> the tensors its config.pbtxt declares (Triton's parse)."""
    message = triton_repo.config_schema()
    out = {}
    for name in (triton_client.MODEL, triton_client.PASTE_MODEL):
        config = triton_repo.parse_config((repo / name / "config.pbtxt").read_text(), message)
        io = {kind: [(t.name, message.DataType.Name(t.data_type).removeprefix("TYPE_"), list(t.dims))
                     for t in getattr(config, kind[:-1])] for kind in ("inputs", "outputs")}
        out[hashlib.sha256((repo / name / "1" / "model.plan").read_bytes()).hexdigest()] = io
    return out


def test_the_repositorys_plans_run_without_torch(repo, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (90, 140, 3), dtype=np.uint8)
    np.save(tmp_path / "frame.npy", image)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    env.update(PYTHONPATH=f"{site_of(tmp_path, ('numpy',))}{os.pathsep}{ROOT}", EXPECTED=json.dumps(declared(repo)))
    out = subprocess.run([sys.executable, "-S", "-c", SCRIPT, str(repo), str(tmp_path / "frame.npy")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["torch"] is False and result["triton"] is False
    settings = json.loads((repo / "maskrt_input.json").read_text())
    images, image_hw = triton_client.preprocess(image, settings)
    assert result["uploads"][:2] == [list(images.shape), [2]]  # what the client would send, and the paste's inputs
    assert result["shapes"]["masks"] == [3, 90, 140] and result["shapes"]["boxes"] == [3, 4]
    assert result["labels"] == [1, 2, 3] and result["shapes"]["image_hw"] == [2]
