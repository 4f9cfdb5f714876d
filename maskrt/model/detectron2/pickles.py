"""detectron2's model-zoo `.pkl` files, read without ever unpickling code.

A model-zoo file is `pickle.dump({"model": {name: np.ndarray}, "__author__": str, ...})`
(DetectionCheckpointer reads it with `pickle.load(f, encoding="latin1")`). `read_model_pickle`
uses an Unpickler whose `find_class` admits only what such a file needs - numpy's array and
scalar reconstructors, numpy dtypes, OrderedDict, and `_codecs.encode` (protocol-2 bytes) -
and refuses every other global in one line, before anything is called: a pickle that would run
a command (`os.system`, `builtins.eval`, ...) is rejected with its import path named.
Everything else in the file must be plain containers and numbers.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ...errors import CheckpointError, first_line

# (module, name) the unpickler may import: how numpy (1.x and 2.x) pickles arrays, dtypes and
# scalars, OrderedDict, and how Python 3 writes bytes in protocol 2.
SAFE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode"),
})
_NUMERIC_KINDS = "fiub"  # float, signed / unsigned integer, bool arrays (no object or string arrays)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside SAFE_GLOBALS."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise RefusedGlobal(f"persistent id {str(pid)[:40]!r}")


def read_model_pickle(path: Path) -> dict:
    """The unpickled top-level dict of a `.pkl` checkpoint; one-line CheckpointError when the file
    is not a pickle, is truncated, holds anything but plain data and numpy arrays, or is not a dict."""
    try:
        data = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except RefusedGlobal as exc:
        raise CheckpointError(f"{path} contains a pickled {exc}, not only numpy arrays; refusing to unpickle it "
                              "(a checkpoint must never run code)") from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, UnicodeDecodeError) as exc:
        truncated = isinstance(exc, EOFError) or "truncated" in str(exc)
        what = "is truncated" if truncated else "is not a readable pickle"
        raise CheckpointError(f"{path} {what} ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a pickled {type(data).__name__}, not a checkpoint dict")
    return data


def model_state_dict(data: dict, path: Path) -> dict[str, torch.Tensor]:
    """The weights of a detectron2 `.pkl` dict: data["model"] (`{"model": ..., "__author__": ...}`),
    numpy arrays as float32 tensors (integer arrays kept), names as saved. Detectron1 / Caffe2
    files ("blobs", or no "model") are refused: their names and numerics are Detectron1's."""
    weights = data.get("model")
    if not isinstance(weights, dict):
        kind = "a Detectron1 / Caffe2 checkpoint (\"blobs\")" if "blobs" in data else \
            f"no \"model\" dict (keys: {', '.join(map(str, list(data)[:4]))})"
        raise CheckpointError(f"{path} is {kind}, not a detectron2 model; maskrt reads detectron2 model-zoo .pkl "
                              "files and DetectionCheckpointer .pth files")
    out = {}
    for key, value in weights.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray) or value.dtype.kind not in _NUMERIC_KINDS:
            shown = type(value).__name__ if not isinstance(value, np.ndarray) else f"array of {value.dtype}"
            raise CheckpointError(f"{path}: model entry {key!r} is {shown}, not a numeric array")
        tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))
        out[key] = tensor.float() if tensor.is_floating_point() else tensor
    return out
