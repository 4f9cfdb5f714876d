#!/bin/bash
# video_run.json 'quiet': the bundled model's int8 `maskrt run` (default settings) on a generated
# 768x576 clip, two source trees alternating (one warm-up run each, which builds each tree's int8
# engine in its own cache), 3 rounds. Usage:
#   bash video_run.sh BASE_TREE NEW_TREE WORKDIR     (e.g. a worktree of ddbee67, this checkout)
set -e
BASE=$(realpath "$1"); NEW=$(realpath "$2"); M=$(realpath "$3")
PY=${PY:-$NEW/.venv/bin/python}
mkdir -p "$M"
[ -f "$M/clip768.mp4" ] || (cd "$NEW" && $PY -c "
from maskrt.data import generate_video
generate_video('$M/clip768.mp4', num_frames=150, fps=15, size=(576, 768), seed=7)")
run() { # tree tag round
  cd "$1"
  MASKRT_CACHE_DIR=$M/cache-$2 $PY -c "import sys; from maskrt.cli import main; sys.exit(main(sys.argv[1:]))" \
    run "$M/clip768.mp4" --model maskrt/assets/shapes_r18fpn64.safetensors --precision int8 \
    --out "$M/$2-$3.mp4" --json "$M/$2-$3.jsonl" --stats "$M/$2-$3.json" --quiet
  echo "$2 round $3 fps $($PY -c "import json; print(json.load(open('$M/$2-$3.json'))['fps'])") load $(cut -d' ' -f1 /proc/loadavg)"
}
run "$BASE" base 0
run "$NEW" new 0
for r in 1 2 3; do run "$BASE" base $r; run "$NEW" new $r; done
