#!/usr/bin/env python
"""The bundled model's INT8 accuracy gate: the int8 CPU engine against the fp32 one.

1. The 500 validation images (maskrt.data.generate_coco_dataset(DIR, 500, seed=424242)), through
   `maskrt eval --model BUNDLED --precision fp32 --precision int8` (side by side on the same
   images): mask AP and box AP must each be within 0.01 (absolute) of the fp32 engine's.
2. A generated video (maskrt.data.generate_video, 240x320) through the streaming pipeline
   (Segmenter.stream, JSON lines), scored per frame against its ground truth with
   maskrt.evaluation.video.video_ap: within 0.02.

    .venv/bin/python tools/int8_gate.py --data runs/int8_gate --out benchmarks/results/avx2/int8_gate.json

Results are kept per kind of CPU (benchmarks/results/KIND/, KIND from maskrt.machine).

Both engines are the ones `maskrt.load(BUNDLED, precision=...)` builds and caches (int8: the
default calibration set, maskrt.builders.calibration). Exit status 1 when a gate fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import maskrt  # noqa: E402
from maskrt.builders.calibration import bundled_checkpoint  # noqa: E402
from maskrt.machine import describe  # noqa: E402

VAL_SEED, VIDEO_SEED = 424_242, 20_240
GATES = {"val500": 0.01, "video": 0.02}


def val500(data: Path, out: Path, images: int) -> dict:
    from maskrt.cli import main
    from maskrt.data import generate_coco_dataset

    dataset = data / f"val{images}"
    if not (dataset / "annotations.json").exists():
        generate_coco_dataset(dataset, images, seed=VAL_SEED)
    results = data / f"{out.stem}.val{images}.json"  # per-image results go beside the dataset
    args = ["eval", "--model", str(bundled_checkpoint()), "--precision", "fp32", "--precision", "int8",
            "--coco", str(dataset / "annotations.json"), "--images", str(dataset / "images"),
            "--out", str(results), "--quiet"]
    print("maskrt " + " ".join(args), file=sys.stderr)
    if main(args) != 0:
        raise SystemExit("maskrt eval failed")
    compare = json.loads(results.with_name(results.stem + ".compare.json").read_text())
    fp32, int8 = compare["models"]
    return {"images": images, "fp32": fp32, "int8": int8, "difference": compare["differences"][0]}


def video(data: Path, frames: int) -> dict:
    from maskrt.data import generate_video
    from maskrt.evaluation.video import video_ap
    from maskrt.engine.stream.sinks import JsonLinesSink

    clip = generate_video(data / "video" / "clip.mp4", num_frames=frames, fps=12, size=(240, 320), seed=VIDEO_SEED)
    scores = {}
    for precision in ("fp32", "int8"):
        seg = maskrt.load(bundled_checkpoint(), score_threshold=0.05, precision=precision)
        sink = JsonLinesSink(data / "video" / f"{precision}.jsonl")
        start = time.perf_counter()
        done = sum(1 for _ in seg.stream(clip, sinks=[sink]))
        scores[precision] = {**video_ap(sink.path, clip.with_suffix(".json"), seg.classes), "frames_done": done,
                             "seconds": round(time.perf_counter() - start, 1)}
    diff = {k: scores["int8"][k] - scores["fp32"][k] for k in ("mask_ap", "mask_ap50", "box_ap", "box_ap50")}
    return {"frames": frames, "seed": VIDEO_SEED, **scores, "difference": diff}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("runs/int8_gate"), help="where datasets and outputs go")
    p.add_argument("--out", type=Path, default=Path(f"benchmarks/results/{describe(False).kind}/int8_gate.json"))
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": describe().summary(), "val": val500(args.data, args.out, args.images),
              "video": video(args.data, args.frames)}
    checks = {"val_mask": abs(report["val"]["difference"]["mask AP"]) <= GATES["val500"],
              "val_box": abs(report["val"]["difference"]["box AP"]) <= GATES["val500"],
              "video_mask": abs(report["video"]["difference"]["mask_ap"]) <= GATES["video"],
              "video_box": abs(report["video"]["difference"]["box_ap"]) <= GATES["video"]}
    report["gates"] = {"limits": GATES, "passed": checks}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
