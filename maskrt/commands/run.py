"""`maskrt run SOURCE --model MODEL ...`: segment a video, camera, URL or still images.

Outputs: --out (an .mp4 for videos, cameras and URLs; a folder of PNGs for still images),
--json (JSON lines, one object per frame), --coco (COCO results JSON), --stats (per-stage
timings JSON). Exit codes: 0 done; 1 outputs written but some input could not be read
(truncated video, unreadable image, lost stream); 2 user error (nothing written);
130 interrupted (Ctrl-C or SIGTERM: the outputs cover the frames done).

--track (commands/tracking.py): track ids on every instance; the model then keeps the low-score
detections ByteTrack needs and --score-threshold filters what is written, after association.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

from ..api import load_with
from ..engine.stream import (CocoResultsSink, JsonLinesSink, Pipeline, PngFolderSink, VideoSink, describe_kind,
                             open_source)
from ..engine.stream.tracking import TrackingStep
from ..errors import MaskrtError
from ..progress import progress_bar
from ..safeio import Output, refuse_overwriting
from .options import load_options
from .tracking import settings as tracking_settings

EXIT_OK, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 130


def run(args: argparse.Namespace) -> int:
    """Run the pipeline for args (see cli._add_run); returns the exit code.

    Order: the source is opened (a missing input is named first), then every output is checked
    and claimed (a folder where a file is wanted, a device an MP4 cannot go to, an input or the
    model, a place that cannot be written, another maskrt process writing it), then the model is
    loaded (built on first use), all before the first frame."""
    tracking = tracking_settings(args)  # a bad --tracker / --interval / --match: before anything is opened
    kind = describe_kind(args.source)
    source = open_source(args.source, log=_log)  # log: URL reconnect reports, above the progress bar
    sinks, stats_out, steps = [], None, []
    try:
        _check_kinds(args, kind)
        if tracking is not None:
            steps = [tracking.step(source, source.live if args.realtime is None else args.realtime)]
        outputs = [p for p in (args.out, args.json, args.coco, args.stats) if p is not None]
        if len({os.path.realpath(p) for p in outputs}) < len(outputs):
            raise MaskrtError("two outputs have the same path")
        sinks = _claim_sinks(args, kind, source)
        stats_out = Output(args.stats, "--stats") if args.stats is not None else None
        _refuse_duplicates(sinks, stats_out)
        model_threshold, min_score = (args.score_threshold, None) if tracking is None else \
            tracking.score_thresholds(args.score_threshold)
        seg = load_with(args.model, load_options(args, score_threshold=model_threshold,
                                                 requests=stream_requests(source, args.realtime)))
    except BaseException:  # released in reverse: folders they made are removed once empty
        if stats_out is not None:
            stats_out.close(False)
        for sink in reversed(sinks):
            sink.close(False)
        source.close()
        raise
    pipeline = Pipeline(seg, source, realtime=args.realtime, batch_size=args.batch, sinks=sinks,
                        show_fps=args.show_fps, max_frames=args.max_frames, steps=steps, min_score=min_score)
    unit = "img" if kind == "images" else "frame"
    try:
        with _stop_on_signals(pipeline):
            _consume(pipeline, unit, quiet=args.quiet)
    except OSError as exc:  # writing an output failed (disk full, permissions): one line
        if stats_out is not None:
            stats_out.close(False)
        raise MaskrtError(f"cannot write output: {exc}") from None
    except BaseException:
        if stats_out is not None:
            stats_out.close(False)
        raise
    return _report(pipeline, args, unit, stats_out)


# Frames a CPU engine holds at once in an offline run: two, so that one frame's dense stage runs
# while another's glue and heads run (engine.stream.pipeline: infer workers), measured faster on
# 2 cores (README: Performance). Real time keeps one: each frame as soon as possible.
OFFLINE_REQUESTS = 2


def stream_requests(source, realtime: bool | None) -> int:
    """OFFLINE_REQUESTS for a file or folder processed offline on a machine with 2+ cores, else 1."""
    live = source.live if realtime is None else realtime
    return 1 if live or (os.cpu_count() or 1) < 2 else OFFLINE_REQUESTS


def _log(message: str) -> None:
    tqdm.write(f"maskrt: {message}", file=sys.stderr)


def _check_kinds(args: argparse.Namespace, kind: str) -> None:
    """What --out must be for this kind of source, and --batch / --max-frames: before anything."""
    if args.batch < 1:
        raise MaskrtError(f"--batch must be at least 1, got {args.batch}")
    if args.max_frames is not None and args.max_frames < 1:
        raise MaskrtError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.out is None:
        return
    if kind == "images":
        if args.out.suffix.lower() == ".mp4" or args.out.is_file():
            raise MaskrtError(f"--out for still images is a folder of PNGs, got {args.out}")
    elif args.out.suffix.lower() != ".mp4":
        raise MaskrtError(f"--out for a {kind} source is an .mp4 file, got {args.out}")


def _claim_sinks(args: argparse.Namespace, kind: str, source) -> list:
    """The sinks, each with its output claimed (sink.prepare; see maskrt.safeio). An output that
    is an input of the source or lies inside the model is refused."""
    model = [Path(args.model)] if Path(args.model).exists() else []
    targets = [args.json, args.coco, args.stats] + ([args.out] if kind != "images" else [])
    refuse_overwriting([p for p in targets if p is not None], source.input_paths() + model, "output",
                       protected=[m for m in model if m.is_dir()])
    sinks = []
    try:
        for path, make in ((args.json, JsonLinesSink), (args.coco, CocoResultsSink),
                           (args.out, PngFolderSink if kind == "images" else VideoSink)):
            if path is not None:
                sinks.append(make(path))
                sinks[-1].prepare(source)
    except BaseException:
        for sink in reversed(sinks):
            sink.close(False)
        raise
    return sinks


def _refuse_duplicates(sinks: list, stats_out) -> None:
    paths = [p for s in sinks for p in s.planned_paths()] + ([stats_out.path] if stats_out is not None else [])
    if len(set(paths)) < len(paths):
        raise MaskrtError("two outputs have the same path")


@contextlib.contextmanager
def _stop_on_signals(pipeline: Pipeline):
    """While inside: the first SIGINT/SIGTERM stops the pipeline cleanly (outputs kept), another one
    at least a second later raises KeyboardInterrupt (sooner: the same signal sent to the whole
    process group, as `timeout` does). Only in the main thread (signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    first = []

    def handler(signum, frame):
        if first:
            if time.monotonic() - first[0] > 1.0:
                raise KeyboardInterrupt
            return
        first.append(time.monotonic())
        pipeline.stop(signal.Signals(signum).name)
        print("\nmaskrt: stopping: finishing the frames in flight (again to abort)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _consume(pipeline: Pipeline, unit: str, quiet: bool) -> None:
    """Drive the pipeline with a progress bar on stderr (frames, fps, drops)."""
    total = None if pipeline.realtime else pipeline.source.expected_frames
    if total is not None and pipeline.max_frames is not None:
        total = min(total, pipeline.max_frames)
    disable = quiet or (unit == "img" and (total or 0) < 2)
    with progress_bar(total=total, unit=unit, disable=disable, dynamic_ncols=True) as bar:
        shown = 0.0
        for _ in pipeline.run():
            bar.update(1)
            now = time.monotonic()
            if now - shown > 0.5:
                stats = pipeline.stats
                bar.set_postfix(fps=f"{stats.recent_fps():.1f}", drops=stats.dropped, refresh=False)
                shown = now


def _report(pipeline: Pipeline, args: argparse.Namespace, unit: str, stats_out) -> int:
    """Print the summary and problems, write --stats; return the exit code."""
    stats = pipeline.stats
    if stats_out is not None:
        stats.write_json(stats_out)
    for problem in pipeline.problems:
        print(f"maskrt: warning: {problem}", file=sys.stderr)
    if not args.quiet:
        what = "image(s) segmented" if unit == "img" else "frames"
        line = f"maskrt: {stats.done} {what} in {stats.elapsed():.1f} s ({stats.fps():.1f} fps)"
        if pipeline.realtime:
            line += f", {stats.dropped} dropped"
        print(line, file=sys.stderr)
        for step in pipeline.steps:
            if isinstance(step, TrackingStep):
                print(f"maskrt: tracking: the engine ran on {step.engine_frames} frames, "
                      f"{step.propagated_frames} carried by the tracker", file=sys.stderr)
        if stats.done and (unit != "img" or stats.done > 1):
            print(stats.format_table(), file=sys.stderr)
        written = [str(s.path if hasattr(s, "path") else s.folder) for s in pipeline.sinks if s.written]
        if written:
            print(f"maskrt: wrote {', '.join(written)}", file=sys.stderr)
    if pipeline.interrupted:
        covered = "the outputs cover those" if stats.done else "nothing written"
        print(f"maskrt: interrupted ({pipeline.interrupted}) after {stats.done} {unit}s; {covered}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_INCOMPLETE if pipeline.problems else EXIT_OK
