"""`maskrt demo` (and `make demo`): segment a generated shapes video with the bundled model,
write the annotated MP4 and JSON lines, and report the fps and the mask AP against the video's
exact ground truth. `run_demo` is the same from Python."""

from __future__ import annotations

import sys
from pathlib import Path

from ..api import load
from ..builders.calibration import is_bundled
from ..engine.stream import JsonLinesSink, Pipeline, VideoSink, open_source
from ..evaluation.video import video_ap
from ..errors import MaskrtError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "shapes_r18fpn64.safetensors"


def run_demo(model: str | Path = DEFAULT_MODEL, out_dir: str | Path = "runs/demo", *, num_frames: int = 60,
             size: tuple[int, int] = (240, 320), fps: float = 15, seed: int = 0, score_threshold: float = 0.5,
             min_size: int | None = None, max_size: int | None = None, show_fps: bool = True,
             quiet: bool = False, precision: str | None = None) -> dict:
    """Generate OUT_DIR/input.mp4 (+ input.json ground truth) with maskrt.data.generate_video,
    segment it offline into OUT_DIR/out.mp4 and OUT_DIR/out.jsonl, print where they are, the fps
    reached and the mask AP against the ground truth; return those as a dict
    {"video", "jsonl", "frames", "fps", "mask_ap", "box_ap", "stats", "precision"}. size is (H, W), even.

    precision: the CPU engine's; by default int8 for the bundled model (built once with its
    default calibration set and cached), whose int8 engine passed its accuracy gate (mask and
    box AP within 0.01 of the fp32 engine on the 500 validation images, within 0.02 on the
    generated video: benchmarks/results/avx2/INT8.md), and fp32 for any other checkpoint."""
    from ..data import generate_video

    if not Path(model).exists() and not str(model).startswith("torchvision:"):
        raise MaskrtError(f"demo model not found: {model}")
    out_dir = Path(out_dir)
    clip = generate_video(out_dir / "input.mp4", num_frames=num_frames, fps=fps, size=size, seed=seed)
    if precision is None and is_bundled(model):
        precision = "int8"
    seg = load(model, score_threshold=score_threshold, min_size=min_size, max_size=max_size, precision=precision)
    video, jsonl = VideoSink(out_dir / "out.mp4"), JsonLinesSink(out_dir / "out.jsonl")
    pipeline = Pipeline(seg, open_source(clip), realtime=False, sinks=[video, jsonl], show_fps=show_fps)
    for _ in pipeline.run():
        pass
    scores = video_ap(jsonl.path, clip.with_suffix(".json"), seg.classes)
    manifest = getattr(seg.backend, "manifest", None)  # engines have one; the torch backend not
    result = {"video": str(video.path), "jsonl": str(jsonl.path), "frames": pipeline.stats.done,
              "fps": round(pipeline.stats.fps(), 2), "mask_ap": round(scores["mask_ap"], 4),
              "box_ap": round(scores["box_ap"], 4), "stats": pipeline.stats.summary(),
              "precision": manifest.precision if manifest else None}
    if not quiet:
        engine = f" ({result['precision']} engine)" if result["precision"] else ""
        print(f"maskrt demo: {result['frames']} frames at {result['fps']:.1f} fps{engine}; "
              f"mask AP {result['mask_ap']:.3f}, box AP {result['box_ap']:.3f}", file=sys.stderr)
        print(f"maskrt demo: wrote {result['video']} and {result['jsonl']}", file=sys.stderr)
    return result
