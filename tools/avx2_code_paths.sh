#!/usr/bin/env bash
# make test's pytest selection with the AVX2 code paths of its libraries, on an AVX-512 machine:
# the numerics an AVX2-only CPU runs (oneDNN's u8 x i8 convolutions without VNNI, ATen's kernels,
# numba's and numpy's SIMD), for sessions that have no AVX2 machine. Not its speed: an AVX-512 core
# running AVX2 code is no AVX2 machine. Usage, after make setup: tools/avx2_code_paths.sh [pytest args]
#
# Not covered: OpenVINO's own JIT emitters (some of its float kernels stay AVX-512) and its list of
# capabilities, which still has BF16. So an fp16 engine asks for bf16 (compute_precision) and oneDNN,
# limited to AVX2, has no bf16 pooling: "Supported primitive descriptors list is empty" for its
# MaxPool. An AVX2 CPU does not list BF16 and runs fp16 engines in f32: that test is left out here.
set -euo pipefail
cd "$(dirname "$0")/.."

export ONEDNN_MAX_CPU_ISA=AVX2          # oneDNN inside OpenVINO and torch
export ATEN_CPU_CAPABILITY=avx2         # torch's vectorised kernels
export NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=  # numba's target: Haswell's features only
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" OPENBLAS_CORETYPE=Haswell

exec .venv/bin/python -m pytest -q tests -m "not signals and not slow" -n "${TEST_WORKERS:-2}" --dist loadscope \
    --no-loadscope-reorder -p no:cacheprovider \
    --deselect tests/builders/test_build.py::test_fp16_cpu_engine_keeps_the_bundled_model_s_detections "$@"
