"""The tracking figures of the README on held-out synthetic clips, in one run.

    PYTHONPATH=. .venv/bin/python tools/tracking_figures.py [--out benchmarks/results/KIND] \\
        [--strip docs/tracking_strip.png] [--work DIR]

Held out: none of these seeds or event settings was used while developing the tracker, the
intervals or the clips' events (development used seeds 11 and 101-103 with clips.EVENTS, and 21-24
with clips.EVENTS and without events).
- set "plain": the generator's default motion (objects cross the frame at constant velocity,
  occluding each other), seeds 7001-7003;
- set "events": HELD_OUT_EVENTS (crossings, an occluder, an object leaving and returning, a
  speed change, the camera panning left), seeds 8001-8003.
Each clip is 240x320, 30 fps, 150 frames, run with the bundled model (fp32 CPU engine, the
model keeping scores above 0.1 and the report at 0.5, as `maskrt run --track` does).

Per clip, interval 1 and interval 3 run one after the other (offline, every frame's JSON record
made), each timed; the speed ratio is interval 1's total wall time over interval 3's, in this
run. Mask IDF1 (and HOTA, ID switches) of both, and of the greedy frame-to-frame mask-IoU
baseline (clips.greedy_records) on the default detections (a run without tracking, scores >= 0.5). Real time: each "plain"
clip played as a live 30 fps source with --interval auto (frames output, dropped, engine calls),
and without tracking for contrast. Writes OUT/TRACKING.md and OUT/tracking-figures.json, and the
strip of annotated frames (the first "plain" clip at interval 3, strip_frames) to --strip.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import maskrt  # noqa: E402
from benchmarks.tools.output import write_atomic  # noqa: E402
from benchmarks.tools.results import markdown_table  # noqa: E402
from benchmarks.tracking.clips import default_records, greedy_records, make_clip, run_clip, score  # noqa: E402
from maskrt.engine.stream import Sink  # noqa: E402

BUNDLED = ROOT / "maskrt" / "assets" / "shapes_r18fpn64.safetensors"
HELD_OUT_EVENTS = {"crossings": 3, "occluders": 1, "returns": 1, "speed_changes": 1, "pan": -20.0}
SETS = {"plain": ((7001, 7002, 7003), {}), "events": ((8001, 8002, 8003), HELD_OUT_EVENTS)}
STRIP_STEP = 16  # frames between the strip's pictures: not a multiple of 3, so carried frames show at interval 3


def clip_figures(seg, clip: Path) -> dict:
    """Interval 1 and 3 on one clip: times, fps, engine calls, tracking scores; the greedy baseline."""
    one, three = run_clip(seg, clip, 1), run_clip(seg, clip, 3)
    s1, s3 = score(one.records, clip), score(three.records, clip)
    greedy = score(greedy_records(default_records(seg, clip)), clip)
    out = {"clip": clip.name}
    for name, run, s in (("interval 1", one, s1), ("interval 3", three, s3)):
        out[name] = {"seconds": run.seconds, "fps": run.fps, "frames": run.frames, "engine_calls": run.engine_calls,
                     "track_ms": 1000 * run.tracking_seconds / run.frames, "mask": s["mask"], "box": s["box"]}
    out["greedy"] = {"mask": greedy["mask"], "box": greedy["box"]}
    return out


def realtime_figures(seg, clip: Path) -> dict:
    """The clip as a live 30 fps source: with tracking at --interval auto, and without tracking."""
    auto = run_clip(seg, clip, "auto", realtime=True)
    with seg.stream(str(clip), realtime=True, min_score=0.5) as plain:
        done = sum(1 for _ in plain)
        dropped = plain.dropped
    return {"clip": clip.name, "auto": {"frames": auto.frames, "dropped": auto.dropped, "engine_calls": auto.engine_calls,
                                        "seconds": auto.seconds, "mask_idf1": score(auto.records, clip)["mask"]["IDF1"]},
            "untracked": {"frames": done, "dropped": dropped}}


class _Frames(Sink):
    """Keeps the annotated frames of the chosen indices."""

    needs_render = True

    def __init__(self, indices):
        super().__init__()
        self.indices, self.frames = set(indices), {}

    def write(self, work) -> None:
        if work.index in self.indices:
            self.frames[work.index] = work.rendered.copy()


def strip_frames(clip: Path, count: int = 4) -> tuple[int, ...]:
    """The `count` frames STRIP_STEP apart showing the most objects (of 150+ pixels) in the ground
    truth: the strip is chosen by what the clip holds, not by how well it is tracked."""
    document = json.loads(clip.with_suffix(".json").read_text())
    shown = np.zeros(len(document["images"]), np.int64)
    for ann in document["annotations"]:
        shown[ann["image_id"]] += ann["area"] >= 150
    last = len(shown) - STRIP_STEP * (count - 1)
    start = max(range(last), key=lambda f: int(shown[f:f + STRIP_STEP * count:STRIP_STEP].sum()))
    return tuple(range(start, start + STRIP_STEP * count, STRIP_STEP))


def strip(seg, clip: Path, path: Path) -> tuple[int, ...]:
    """Four frames of `clip` (strip_frames) tracked at interval 3, side by side, as a palette PNG."""
    from PIL import Image

    frames = strip_frames(clip)
    sink = _Frames(frames)
    with seg.stream(str(clip), track=True, interval=3, min_score=0.5, sinks=[sink]) as stream:
        for _ in stream:
            pass
    gap = np.full((sink.frames[frames[0]].shape[0], 4, 3), 255, np.uint8)
    tiles = [part for index in frames for part in (sink.frames[index], gap)][:-1]
    image = Image.fromarray(np.concatenate(tiles, axis=1)).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    buffer = __import__("io").BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    write_atomic(path, buffer.getvalue())
    return frames


def report(results: dict) -> str:
    """TRACKING.md: the machine, per-set means, per-clip rows, the real-time rows."""
    rows = []
    for set_name, clips in results["sets"].items():
        for c in clips:
            one, three, greedy = c["interval 1"], c["interval 3"], c["greedy"]
            rows.append([set_name, c["clip"], f"{one['mask']['IDF1']:.3f}", f"{three['mask']['IDF1']:.3f}",
                         f"{greedy['mask']['IDF1']:.3f}", f"{one['mask']['IDSW']} / {three['mask']['IDSW']} / "
                         f"{greedy['mask']['IDSW']}", f"{one['mask']['HOTA']:.3f} / {three['mask']['HOTA']:.3f}",
                         f"{one['fps']:.1f} / {three['fps']:.1f}", f"{one['seconds'] / three['seconds']:.2f}x"])
    lines = ["# Tracking figures (tools/tracking_figures.py)", "", f"Machine: {results['machine']}", "",
             f"Load average at the start / end: {results['load'][0]} / {results['load'][1]} (1, 5, 15 min; 2 CPUs).", "",
             "Mask IDF1 / ID switches / HOTA by mask IoU; fps: output frames per second; speed: interval 1's wall "
             "time over interval 3's, same run.", "",
             *markdown_table(["set", "clip", "IDF1 int 1", "IDF1 int 3", "IDF1 greedy", "ID sw. 1 / 3 / greedy",
                              "HOTA 1 / 3", "fps 1 / 3", "speed 3 vs 1"], rows), ""]
    for set_name, summary in results["summary"].items():
        lines.append(f"- {set_name}: mask IDF1 interval 1 {summary['idf1_1']:.3f}, interval 3 {summary['idf1_3']:.3f} "
                     f"({summary['ratio_3_vs_1']:.2f} of interval 1), greedy {summary['idf1_greedy']:.3f}; speed "
                     f"interval 3 vs 1: {summary['speedup']:.2f}x")
    lines += ["", *markdown_table(["real time, 30 fps live", "frames", "output (auto)", "dropped (auto)", "engine calls",
                                  "output without tracking", "dropped without tracking"],
                                 [[r["clip"], str(results["frames"]), str(r["auto"]["frames"]), str(r["auto"]["dropped"]),
                                   str(r["auto"]["engine_calls"]), str(r["untracked"]["frames"]),
                                   str(r["untracked"]["dropped"])] for r in results["realtime"]]), ""]
    return "\n".join(lines)


def summarise(clips: list[dict]) -> dict:
    mean = lambda key, by="mask": float(np.mean([c[key][by]["IDF1"] for c in clips]))  # noqa: E731
    idf1_1, idf1_3 = mean("interval 1"), mean("interval 3")
    return {"idf1_1": idf1_1, "idf1_3": idf1_3, "idf1_greedy": mean("greedy"), "ratio_3_vs_1": idf1_3 / idf1_1,
            "speedup": sum(c["interval 1"]["seconds"] for c in clips) / sum(c["interval 3"]["seconds"] for c in clips)}


def main(argv: list[str] | None = None) -> int:
    import os

    from maskrt.machine import describe

    kind = describe(False).kind
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / kind)
    parser.add_argument("--strip", type=Path, default=ROOT / "docs" / "tracking_strip.png")
    parser.add_argument("--work", type=Path, help="where the clips are made (default: a temporary folder)")
    parser.add_argument("--strip-only", action="store_true", help="only make the strip")
    parser.add_argument("--realtime-only", action="store_true",
                        help="only the real-time rows, to OUT/tracking-realtime.json (e.g. at a raised priority "
                             "on a shared machine: nice -n -10)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="maskrt-tracking-"))
    seg = maskrt.load(BUNDLED, score_threshold=0.1)
    strip_clip = make_clip(work, SETS["plain"][0][0], 150, SETS["plain"][1])
    if args.strip_only:
        print(f"strip: {strip_clip.name} frames {strip(seg, strip_clip, args.strip)}")
        return 0
    if args.realtime_only:
        rows = [realtime_figures(seg, make_clip(work, seed, 150, SETS["plain"][1])) for seed in SETS["plain"][0]]
        record = {"machine": str(describe()), "nice": os.nice(0), "load": " ".join(f"{v:.1f}" for v in os.getloadavg()),
                  "realtime": rows}
        write_atomic(args.out / "tracking-realtime.json", json.dumps(record, indent=1) + "\n")
        print(json.dumps(record, indent=1))
        return 0
    load0 = " ".join(f"{v:.1f}" for v in os.getloadavg())
    results = {"machine": str(describe()), "frames": 150, "sets": {}, "summary": {}, "realtime": []}
    for set_name, (seeds, events) in SETS.items():
        clips = [make_clip(work, seed, 150, events) for seed in seeds]
        results["sets"][set_name] = [clip_figures(seg, clip) for clip in clips]
        results["summary"][set_name] = summarise(results["sets"][set_name])
        print(json.dumps({set_name: results["summary"][set_name]}), flush=True)
    for seed in SETS["plain"][0]:
        results["realtime"].append(realtime_figures(seg, make_clip(work, seed, 150, SETS["plain"][1])))
        print(json.dumps(results["realtime"][-1]), flush=True)
    results["load"] = [load0, " ".join(f"{v:.1f}" for v in os.getloadavg())]
    write_atomic(args.out / "tracking-figures.json", json.dumps(results, indent=1) + "\n")
    write_atomic(args.out / "TRACKING.md", report(results))
    print(f"strip: {strip_clip.name} frames {strip(seg, strip_clip, args.strip)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
