"""The nms op (see README.md): `reference` (torchvision, the ground truth), `cpu` (fast
vectorised torch/numpy, module `nms.cpu`) and `triton` (module `nms.triton`, imported on demand).
Select one with `maskrt.kernels.use(...)`; the implementations are registered in `maskrt.kernels.dispatch`.
"""

from .reference import nms as reference

__all__ = ["reference"]
