"""The roi_align op (see README.md): `reference` (torchvision, the ground truth), `cpu` (fast
vectorised torch/numpy, module `roi_align.cpu`) and `triton` (module `roi_align.triton`, imported on demand);
torch_ops.py defines torch.ops.maskrt.roi_align, warmup.py the Triton warm-up calls. Registered in
maskrt.kernels.registry; select an implementation with `maskrt.kernels.use(...)`.
"""

from ..op import Op
from . import cpu
from .reference import roi_align as reference
from .warmup import warm_up_calls

OP = Op(name="roi_align", reference=reference, cpu=cpu.roi_align, triton="roi_align.triton:roi_align", torch_ops="roi_align.torch_ops",
        warm_up=warm_up_calls)

__all__ = ["OP", "reference"]
