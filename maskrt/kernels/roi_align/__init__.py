"""The roi_align op (see README.md): `reference` (torchvision, the ground truth), `cpu` (fast
vectorised torch/numpy, module `roi_align.cpu`) and `triton` (module `roi_align.triton`, imported on demand).
Select one with `maskrt.kernels.use(...)`; the implementations are registered in `maskrt.kernels.dispatch`.
"""

from .reference import roi_align as reference

__all__ = ["reference"]
