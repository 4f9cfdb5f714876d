"""Verifying GPU code on a machine without a GPU (used by tests/ and benchmarks/gpu, not at run time).

- recording.py  record Triton kernel launches instead of running them
- fake_cuda.py  run host code on fake CUDA tensors (FakeTensorMode): no hidden host sync, no CPU tensor mixed in
- launches.py   every kernel configuration the wrappers launch at the model's sizes
- ptx.py        compile those launches for sm_90a / sm_80 with the ptxas in the triton wheel: registers,
                spills, stack, approximate divisions (`python -m maskrt.gpu_verify.ptx` prints the table)
"""
