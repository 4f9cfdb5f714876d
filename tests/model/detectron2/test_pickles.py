"""Model-zoo `.pkl` files are read without unpickling code (maskrt.model.detectron2.pickles): numpy
arrays, dtypes and plain containers only; a payload that would run a command is refused in one
line before anything runs; truncated files, other pickles and Detectron1 files are one line too."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from maskrt.errors import CheckpointError
from maskrt.model import load_checkpoint
from tests.cli_runner import run_in_process


class _RunsACommand:
    """Unpickling this calls os.system(command): what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write(path: Path, obj, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_a_model_zoo_pickle_loads(tmp_path):
    """numpy 2 arrays of float32 / float64 / int64, an OrderedDict, protocols 2 and 4."""
    weights = OrderedDict([("backbone.bottom_up.stem.conv1.weight", np.arange(6, dtype=np.float64).reshape(2, 3)),
                           ("roi_heads.box_predictor.cls_score.bias", np.ones(3, np.float32)),
                           ("backbone.bottom_up.stem.conv1.norm.num_batches_tracked", np.array(7, np.int64))])
    for protocol in (2, 4):
        data = {"model": weights, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
        ckpt = load_checkpoint(write(tmp_path / f"p{protocol}.pkl", data, protocol))
        assert ckpt.format == "detectron2" and list(ckpt.state_dict) == list(weights)
        stem = ckpt.state_dict["backbone.bottom_up.stem.conv1.weight"]
        assert stem.dtype == torch.float32 and torch.equal(stem, torch.arange(6.0).reshape(2, 3))
        assert ckpt.state_dict["backbone.bottom_up.stem.conv1.norm.num_batches_tracked"].dtype == torch.int64


def test_a_code_payload_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"model": {"backbone.bottom_up.stem.conv1.weight": np.zeros(2, np.float32)},
               "__author__": _RunsACommand(f"touch {marker}")}
    path = write(tmp_path / "evil.pkl", payload)
    with pytest.raises(CheckpointError, match=r"contains a pickled posix\.system, not only numpy arrays; refusing"):
        load_checkpoint(path)
    res = run_in_process("build", str(path), "-o", str(tmp_path / "e.maskrt"))
    code, err = res.returncode, res.stderr
    assert code == 2 and err.count("\n") == 1 and err.startswith("maskrt: error: ") and "refusing" in err
    assert not marker.exists() and not (tmp_path / "e.maskrt").exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps({"model": {}, "__author__": eval}),  # a builtin function as a value
    b"\x80\x04cbuiltins\nexec\n(S'print(1)'\ntR.",  # builtins.exec called directly
    b"\x80\x04cnumpy\nload\n.",  # a numpy global that is not an array constructor
])
def test_other_globals_are_refused(tmp_path, payload):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(path)


def test_truncated_and_garbage_files_are_one_line(tmp_path):
    data = {"model": {"backbone.bottom_up.stem.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, "__author__": "x"}
    blob = pickle.dumps(data, protocol=4)
    truncated = tmp_path / "model_final.pkl"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="not a readable pickle"):
        load_checkpoint(garbage)
    for path in (truncated, garbage):
        res = run_in_process("info", str(path))
        code, err = res.returncode, res.stderr
        assert code == 2 and err.count("\n") == 1 and err.startswith("maskrt: error: ")


@pytest.mark.parametrize("data,message", [
    ([1, 2, 3], "holds a pickled list, not a checkpoint dict"),
    ({"blobs": {"conv1_w": np.zeros(2, np.float32)}}, "Detectron1 / Caffe2 checkpoint"),
    ({"conv1_w": np.zeros(2, np.float32)}, "no \"model\" dict"),
    ({"model": {"a": np.array(["x"], dtype=object)}}, "model entry 'a' is array of object"),
    ({"model": {"a": [1.0, 2.0]}}, "model entry 'a' is list, not a numeric array"),
])
def test_other_pickles_are_refused(tmp_path, data, message):
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace("/", "/")):
        load_checkpoint(write(tmp_path / "x.pkl", data))
