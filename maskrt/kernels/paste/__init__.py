"""The paste op: `reference` (torchvision, the ground truth) and faster implementations."""

from .reference import paste as reference

__all__ = ["reference"]
