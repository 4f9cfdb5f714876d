#!/bin/bash
# One R50 800x1333 int8 engine call (`seg(image).masks`, the benchmark image of
# benchmarks/end_to_end/test_r50_800x1333.py), two source trees alternating in separate processes,
# 3 rounds of CALLS calls after WARMUP warm-up calls (default 5 after 1; the dense stage needs about
# three calls after loading to settle, so WARMUP=3 CALLS=8 measures the steady state); prints each
# round's median. The same engine folder for both trees (the engine format did not change). Usage:
#   [WARMUP=3 CALLS=8] bash r50_call_ab.sh BASE_TREE NEW_TREE ENGINE
#   (e.g. a worktree of b2ebcaa, this checkout, an engine built by the R50 benchmark module)
set -e
BASE=$(realpath "$1"); NEW=$(realpath "$2"); ENGINE=$(realpath "$3")
PY=${PY:-$NEW/.venv/bin/python}
export WARMUP=${WARMUP:-1} CALLS=${CALLS:-5}
call() {
  cd "$1" && PYTHONPATH="$1" $PY - "$1" "$ENGINE" <<'PYEOF'
import json, os, sys, time
import numpy as np
import maskrt
from benchmarks.conftest import bench_image
assert maskrt.__file__.startswith(sys.argv[1])
seg = maskrt.load(sys.argv[2], num_threads=2)
image = bench_image(800, 1333)
for _ in range(int(os.environ["WARMUP"])):
    seg(image).masks
times = []
for _ in range(int(os.environ["CALLS"])):
    start = time.perf_counter()
    seg(image).masks
    times.append(time.perf_counter() - start)
print(json.dumps({"tree": sys.argv[1], "median_ms": round(1000 * float(np.median(times)), 1),
                  "min_ms": round(1000 * min(times), 1), "ms": [round(1000 * t, 1) for t in times],
                  "load": open("/proc/loadavg").read().split()[0]}))
PYEOF
}
for r in 1 2 3; do call "$BASE"; call "$NEW"; done
