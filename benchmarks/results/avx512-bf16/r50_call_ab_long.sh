#!/bin/bash
# One R50 800x1333 int8 call (`seg(image).masks`, the image of benchmarks/end_to_end/test_r50_800x1333.py),
# two source trees alternating in separate processes, 3 rounds; each process: 3 warm-up calls, then 8
# timed calls (r50_call_ab.sh times 5 after one warm-up, which let the dense stage's warm-up into them).
# Usage: bash r50_call_ab_long.sh BASE_TREE NEW_TREE ENGINE
set -e
BASE=$(realpath "$1"); NEW=$(realpath "$2"); ENGINE=$(realpath "$3")
PY=${PY:-$NEW/.venv/bin/python}
call() {
  cd "$1" && PYTHONPATH="$1" $PY - "$1" "$ENGINE" <<'PYEOF'
import json, sys, time
import numpy as np
import maskrt
from benchmarks.conftest import bench_image
assert maskrt.__file__.startswith(sys.argv[1])
seg = maskrt.load(sys.argv[2], num_threads=2)
image = bench_image(800, 1333)
for _ in range(3):
    seg(image).masks
times = []
for _ in range(8):
    start = time.perf_counter()
    seg(image).masks
    times.append(time.perf_counter() - start)
print(json.dumps({"tree": sys.argv[1], "median_ms": round(1000 * float(np.median(times)), 1),
                  "min_ms": round(1000 * min(times), 1), "ms": [round(1000 * t, 1) for t in times],
                  "load": open("/proc/loadavg").read().split()[0]}))
PYEOF
}
for r in 1 2 3; do call "$BASE"; call "$NEW"; done
