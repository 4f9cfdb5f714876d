"""Reading checkpoints safely: `.safetensors`, `.pth`/`.pt` loaded with `weights_only=True`, or a
detectron2 model-zoo `.pkl` read by an unpickler that admits numpy arrays and plain data only.

A checkpoint is a torchvision-format Mask R-CNN state dict, either bare or wrapped under
"model" / "state_dict", or a detectron2 one (`format` "detectron2": a `.pkl`, or a `.pth` whose
names are detectron2's, e.g. DetectionCheckpointer's {"model": ..., "trainer": ..., "iteration"}).
Optional metadata (class names, input size policy, RPN proposals per image) travels in the
safetensors header metadata or, for `.pth`, in the wrapper dict next to the weights.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError, first_line

SAFETENSORS_SUFFIXES = {".safetensors"}
DETECTRON2_PICKLE_SUFFIX = ".pkl"  # detectron2's model zoo (read by maskrt.model.detectron2.pickles)
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
_METADATA_KEYS = ("classes", "min_size", "max_size", "proposals")


@dataclass
class Checkpoint:
    """A state dict plus the optional metadata stored beside it."""

    state_dict: dict[str, torch.Tensor]
    classes: list[str] | None = None
    metadata: dict[str, object] = field(default_factory=dict)
    source: str = ""
    format: str = "torchvision"  # or "detectron2": detectron2's names (maskrt.model.detectron2)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint file; every failure is a one-line `CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    if path.suffix.lower() == DETECTRON2_PICKLE_SUFFIX:
        from .detectron2 import model_state_dict, read_model_pickle

        state_dict, meta = model_state_dict(read_model_pickle(path), path), {}
    elif path.suffix.lower() in SAFETENSORS_SUFFIXES:
        state_dict, meta = _read_safetensors(path)
    else:
        state_dict, meta = _read_torch(path)
    state_dict = _clean_state_dict(state_dict, path)
    classes = meta.pop("classes", None)
    from .detectron2 import is_detectron2_state_dict

    fmt = "detectron2" if is_detectron2_state_dict(state_dict) else "torchvision"
    return Checkpoint(state_dict, classes=classes, metadata=meta, source=str(path), format=fmt)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw_meta = f.metadata() or {}
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({first_line(exc)})") from None
    meta = {}
    for key in _METADATA_KEYS:
        if key in raw_meta:
            try:
                meta[key] = json.loads(raw_meta[key])
            except json.JSONDecodeError:
                raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON") from None
    # fp16 storage (the bundled model) is loaded as fp32 for inference.
    state_dict = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state_dict.items()}
    return state_dict, meta


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = first_line(exc)
        lowered = msg.lower()
        if any(t in lowered for t in ("weights only", "weights_only", "unsupported global", "global")):
            raise CheckpointError(
                f"{path} contains Python objects other than tensors; refusing to unpickle it "
                "(save a plain state dict, or convert it to .safetensors)"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({msg})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({first_line(exc)})") from None
    except Exception as exc:  # garbage bytes make the unpickler fail in arbitrary ways
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {first_line(exc)})") from None
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> tuple[dict, dict]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    meta = {k: obj[k] for k in _METADATA_KEYS if k in obj and not isinstance(obj[k], torch.Tensor)}
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key], meta
    return {k: v for k, v in obj.items() if k not in meta}, meta


def _clean_state_dict(state_dict: dict, path: Path) -> dict[str, torch.Tensor]:
    if not state_dict:
        raise CheckpointError(f"{path} holds no weights")
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entry {bad[0]!r} is not a tensor; expected a state dict of tensors")
    if all(k.startswith("module.") for k in state_dict):  # saved from DataParallel
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)
