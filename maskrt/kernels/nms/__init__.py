"""The nms op: `reference` (torchvision, the ground truth) and faster implementations."""

from .reference import nms as reference

__all__ = ["reference"]
