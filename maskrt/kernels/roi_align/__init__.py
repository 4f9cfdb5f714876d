"""The roi_align op: `reference` (torchvision, the ground truth) and faster implementations."""

from .reference import roi_align as reference

__all__ = ["reference"]
