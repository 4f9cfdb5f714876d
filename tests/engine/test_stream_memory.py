"""release_free_memory: glibc's malloc_trim where there is one; the pipeline calls it."""

from __future__ import annotations

import ctypes.util

import numpy as np
import torch

from maskrt.engine.stream import memory
from maskrt.engine.stream.pipeline import Pipeline
from maskrt.engine.sources import ArraySource
from maskrt.model import RawDetections


def test_release_free_memory_uses_glibc_malloc_trim_when_present():
    has_glibc = ctypes.util.find_library("c") is not None and hasattr(ctypes.CDLL(ctypes.util.find_library("c")),
                                                                       "malloc_trim")
    assert memory.release_free_memory() is has_glibc


class EmptyBackend:
    @staticmethod
    def infer(images):
        return [RawDetections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64),
                              torch.zeros(0, 28, 28), img.shape[:2]) for img in images]


class NothingSegmenter:
    """A stand-in segmenter that finds nothing: the pipeline only needs classes and backend.infer."""

    classes = ["thing"]
    backend = EmptyBackend()


def test_pipeline_trims_every_n_frames_and_at_the_end(monkeypatch):
    calls = []
    monkeypatch.setattr("maskrt.engine.stream.pipeline.release_free_memory", lambda: calls.append(1))
    monkeypatch.setattr("maskrt.engine.stream.pipeline.TRIM_EVERY_FRAMES", 10)
    frames = [np.zeros((8, 8, 3), np.uint8)] * 25
    for _ in Pipeline(NothingSegmenter(), ArraySource(frames)).run():
        pass
    assert len(calls) == 3  # after frames 10 and 20, and when the run closes
