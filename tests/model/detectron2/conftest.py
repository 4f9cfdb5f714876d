"""Shared: detectron2 state dicts of the golden specs' layouts (random values: for loading tests)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from tests.model.detectron2 import weights as W


def random_state_dict(name: str, seed: int = 0) -> "OrderedDict[str, np.ndarray]":
    """The layout of spec `name` (every key and shape), N(0, 0.01) values: cheap, not calibrated."""
    rng = np.random.default_rng(seed)
    return OrderedDict((key, (rng.standard_normal(shape) * 0.01).astype(np.float32))
                       for key, shape, _ in W.load_spec(name)["tensors"])


@pytest.fixture
def r18_weights():
    return random_state_dict("r18_fpn64_c7_agnostic_mask")
