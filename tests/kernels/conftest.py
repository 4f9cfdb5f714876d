"""Kernel tests: the Triton kernels run on CPU tensors through Triton's interpreter.

TRITON_INTERPRET must be set before any kernel is decorated (maskrt imports them lazily, on the
first call of a triton implementation), so it is set here, before the tests import anything.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

IMPLS = ("cpu", "triton")  # checked against the reference implementation
PEER_IMPLS = ("cpu", "op", "triton")  # the torchvision peer suites (test_tv_*.py): "op" = torch.ops.maskrt.*
