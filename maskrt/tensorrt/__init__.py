"""The `tensorrt` target, all of it in this package (map and status: TENSORRT.md beside this file).

- schemas.py        the one source of truth for the plugin ops (ONNX node and TensorRT plugin)
- onnx_symbolics.py torch.ops.maskrt.* exported as the plugin nodes
- graph.py          the detector as one ONNX graph for TensorRT: the model's own glue, traced
- plugins.py        tensorrt.plugin registrations (shapes, formats, ahead-of-time implementations)
- aot.py            each plugin's one kernel launch: PTX baked into the plan, or run on torch tensors
- build.py          ONNX -> TensorRT plans, every plugin checked to be AOT (needs TensorRT: unverified here)
- backend.py        runs model.plan, one CUDA stream per frame   (needs TensorRT and a GPU: unverified here)
- triton_repo.py    maskrt export --triton-repo: a Triton Inference Server model repository
- triton_client.py  the repository's client.py: the plans' I/O contract and preprocessing, numpy only
- plan_runner.py    the plans without torch: tensorrt + numpy + libcudart   (needs TensorRT and a GPU)

`import tensorrt` happens only in this package, and only inside the functions that need it, so
importing maskrt.tensorrt (to export or check the ONNX on a CPU) never needs TensorRT; and
triton_client and plan_runner import neither torch nor the rest of maskrt.
"""
