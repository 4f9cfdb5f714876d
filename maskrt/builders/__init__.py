"""checkpoint -> ONNX (per target) -> OpenVINO IR / TensorRT plan; the engine artifact."""

from .build import build_engine

__all__ = ["build_engine"]
