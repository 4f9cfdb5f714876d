"""checkpoint -> ONNX (per target) -> OpenVINO IR / TensorRT plan; the engine artifact."""

from .build import build_engine
from .manifest import Manifest, is_engine_dir, read_manifest

__all__ = ["Manifest", "build_engine", "is_engine_dir", "read_manifest"]
