"""Checkpoint loading: formats, wrappers, metadata, and one clear line for every bad input."""

from __future__ import annotations

import pickle

import pytest
import torch

from maskrt.errors import CheckpointError
from maskrt.model import load_checkpoint, load_model, save_checkpoint
from tests.conftest import SMALL_CLASSES, small_torchvision_maskrcnn


@pytest.fixture(scope="module")
def state_dict():
    return small_torchvision_maskrcnn().state_dict()


def _error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict"])
def test_pth_bare_or_wrapped(tmp_path, state_dict, wrapper):
    path = tmp_path / "m.pth"
    torch.save(state_dict if wrapper is None else {wrapper: state_dict, "epoch": 3}, path)
    loaded = load_model(path)
    assert loaded.config.depth == 18 and loaded.config.num_classes == 5
    assert loaded.classes == ["__background__"] + [f"class_{i}" for i in range(1, 5)]


def test_pth_with_class_names_and_dataparallel_prefix(tmp_path, state_dict):
    path = tmp_path / "m.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state_dict.items()}, "classes": SMALL_CLASSES}, path)
    assert load_model(path).classes[1:] == SMALL_CLASSES


def test_safetensors_metadata_and_fp16_storage(tmp_path, state_dict):
    path = save_checkpoint(tmp_path / "m.safetensors", state_dict, classes=SMALL_CLASSES, min_size=256,
                           max_size=300, half=True)
    ckpt = load_checkpoint(path)
    assert all(v.dtype != torch.float16 for v in ckpt.state_dict.values())
    loaded = load_model(path)
    assert loaded.classes[1:] == SMALL_CLASSES
    assert (loaded.model.policy.min_size, loaded.model.policy.max_size) == (256, 300)
    assert not list(tmp_path.glob("*.tmp")), "atomic save leaves no temporary file"


def test_missing_file(tmp_path):
    assert "not found" in _error(tmp_path / "nope.pth")


def test_directory(tmp_path):
    assert "directory" in _error(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.pth").write_bytes(b"")
    assert "empty" in _error(tmp_path / "e.pth")


def test_truncated_pth(tmp_path, state_dict):
    path = tmp_path / "t.pth"
    torch.save(state_dict, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated" in _error(path)


def test_truncated_safetensors(tmp_path, state_dict):
    path = save_checkpoint(tmp_path / "t.safetensors", state_dict)
    path.write_bytes(path.read_bytes()[:-1000])
    assert "not a valid safetensors" in _error(path)


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello, I am not a checkpoint\n" * 10)
    assert "not a PyTorch checkpoint" in _error(path)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, path)
    assert "refusing to unpickle" in _error(path)
    assert "never run" not in capsys.readouterr().out


def test_plain_pickle_of_non_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    assert "not a state dict" in _error(path)


def test_not_a_maskrcnn(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), path)
    assert "not a torchvision Mask R-CNN" in _error(path)


def test_missing_key(tmp_path, state_dict):
    sd = dict(state_dict)
    del sd["roi_heads.box_head.fc7.bias"]
    torch.save(sd, tmp_path / "m.pth")
    message = _error(tmp_path / "m.pth")
    assert "missing keys" in message and "roi_heads.box_head.fc7.bias" in message


def test_unexpected_key(tmp_path, state_dict):
    torch.save({**state_dict, "extra.weight": torch.zeros(2)}, tmp_path / "m.pth")
    message = _error(tmp_path / "m.pth")
    assert "unexpected keys" in message and "extra.weight" in message


def test_wrong_shape(tmp_path, state_dict):
    sd = dict(state_dict)
    sd["roi_heads.box_head.fc7.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "m.pth")
    message = _error(tmp_path / "m.pth")
    assert "roi_heads.box_head.fc7.bias" in message and "shape" in message


def test_class_name_count_mismatch(tmp_path, state_dict):
    save_checkpoint(tmp_path / "m.safetensors", state_dict, classes=["a", "b"])
    assert "2 class names for a 5-class model" in _error(tmp_path / "m.safetensors")


def test_non_tensor_entry(tmp_path, state_dict):
    torch.save({**state_dict, "note": "hi"}, tmp_path / "m.pth")
    assert "'note' is not a tensor" in _error(tmp_path / "m.pth")


def test_unpickling_error_type_is_not_leaked(tmp_path):
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    assert _error(path)
