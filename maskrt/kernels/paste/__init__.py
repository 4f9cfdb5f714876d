"""The paste op (see README.md): `reference` (torchvision, the ground truth), `cpu` (fast
vectorised torch/numpy, module `paste.cpu`) and `triton` (module `paste.triton`, imported on demand).
Select one with `maskrt.kernels.use(...)`; the implementations are registered in `maskrt.kernels.dispatch`.
"""

from .reference import paste as reference

__all__ = ["reference"]
