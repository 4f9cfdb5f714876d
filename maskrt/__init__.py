"""maskrt: Mask R-CNN inference engine (OpenVINO on CPUs, TensorRT + Triton kernels on GPUs).

The public names are imported on first use (PEP 562), so that `import maskrt` (and the CLI's
start, where Ctrl-C must stay one line) does not load torch and OpenVINO until they are needed.
"""

from ._version import __version__
from .errors import MaskrtError

__all__ = ["Detections", "MaskrtError", "Segmenter", "__version__", "load"]

_LAZY = {"load": ("api", "load"), "Segmenter": ("engine", "Segmenter"), "Detections": ("engine", "Detections")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maskrt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
