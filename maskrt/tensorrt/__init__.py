"""The `tensorrt` target, all of it in this package (map and status: TENSORRT.md beside this file).

- schemas.py        the one source of truth for the plugin ops (ONNX node and TensorRT plugin)
- onnx_symbolics.py torch.ops.maskrt.* exported as the plugin nodes
- graph.py          the detector as one ONNX graph for TensorRT: the model's own glue, traced
- plugins.py        tensorrt.plugin registrations (shapes, formats, JIT implementations)
- aot.py            ahead-of-time plugin implementations (PTX baked into the plan)
- build.py          ONNX -> TensorRT plan                      (needs TensorRT: unverified here)
- backend.py        runs a plan, one CUDA stream per frame     (needs TensorRT and a GPU: unverified here)

`import tensorrt` happens only in this package, and only inside the functions that need it, so
importing maskrt.tensorrt (to export or check the ONNX on a CPU) never needs TensorRT.
"""
