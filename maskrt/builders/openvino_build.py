"""ONNX stages -> OpenVINO IR (stage.xml + stage.bin) for the `cpu` target."""

from __future__ import annotations

from pathlib import Path


def convert_to_ir(onnx_path: Path, xml_path: Path, fp16_weights: bool) -> Path:
    """Convert one ONNX graph to OpenVINO IR. fp16_weights: store weights compressed to fp16."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=fp16_weights)
    return xml_path
