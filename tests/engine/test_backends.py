"""Every backend implements the Backend protocol (engine/backends/base.py)."""

from __future__ import annotations

import pytest

import maskrt
from maskrt.engine.backends import Backend
from maskrt.tensorrt.backend import TensorRTBackend


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_cpu_backends_implement_the_protocol(small_checkpoint, backend):
    seg = maskrt.load(small_checkpoint, backend=backend)
    assert isinstance(seg.backend, Backend) and seg.backend.name == backend
    assert seg.backend.detector is not None


def test_tensorrt_backend_declares_the_protocol():
    # no GPU here: the class is checked for what the protocol needs
    assert TensorRTBackend.name == "tensorrt" and callable(TensorRTBackend.infer)
    assert "detector" in TensorRTBackend.__init__.__code__.co_names
