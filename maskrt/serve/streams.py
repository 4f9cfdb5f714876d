"""Cameras and streams as supervised Ray actors: one StreamWorker per `--stream NAME=SOURCE`.

Two levels of supervision:
- inside the actor, a thread runs `Segmenter.stream(source, realtime=True)` (newest frame kept,
  drops counted; URL sources reconnect with exponential backoff, see UrlSource) and starts it
  again, after a backoff, whenever it ends or fails (a source that cannot be opened, a URL that
  gave up);
- Ray restarts the actor process itself when it dies (`max_restarts=-1`); the new process runs
  __init__ again and the stream's JSON lines continue (stream_io.AppendJsonLinesSink).

Outputs per stream in OUT_DIR: NAME.jsonl, NAME.state.json ({"starts": n}), and with
segment_seconds NAME/segment_NNNNN.mp4. The gateway reads stats() and latest() for the page,
the MJPEG feed and /metrics.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.sources import describe_kind
from ..engine.stream.tracking import TrackingOptions
from ..errors import MaskrtError
from .model import ModelSpec
from .stream_io import AppendJsonLinesSink, LatestFrameSink, LoopingVideoSource, SegmentedVideoSink

NAMESPACE = "maskrt"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
SHOWN_STAGES = ("decode", "infer", "postprocess", "render", "encode", "latency")


@dataclass(frozen=True)
class StreamSpec:
    """name: [A-Za-z0-9_-]{1,40}; source: a webcam index, an rtsp/http/... URL, or a video file
    (looped); url_options go to UrlSource (backoff_s, max_backoff_s, timeout_s, ...); tracking:
    the checked --track settings or None."""

    name: str
    source: str
    out_dir: str
    segment_seconds: float | None = None
    min_score: float | None = None
    restart_backoff_s: float = 1.0
    max_restart_backoff_s: float = 30.0
    url_options: dict = field(default_factory=dict)
    tracking: TrackingOptions | None = None  # --track: ids on every instance of NAME.jsonl

    @property
    def actor_name(self) -> str:
        return f"maskrt-stream-{self.name}"


def parse_stream(text: str, out_dir: str, **options) -> StreamSpec:
    """'NAME=SOURCE' -> StreamSpec; MaskrtError (one line) for anything unusable."""
    name, sep, source = text.partition("=")
    if not sep or not source:
        raise MaskrtError(f"--stream wants NAME=SOURCE, got {text!r}")
    if not NAME_RE.match(name):
        raise MaskrtError(f"stream name {name!r}: use 1-40 letters, digits, '-' or '_'")
    kind = describe_kind(source)
    if kind == "images":
        raise MaskrtError(f"stream {name}: {source} is an image source; give a camera index, a URL or a video file")
    if kind == "video" and not Path(source).is_file():
        raise MaskrtError(f"stream {name}: video file not found: {source}")
    if kind == "video":
        source = str(Path(source).resolve())
    return StreamSpec(name, source, str(Path(out_dir).resolve()), **options)


def open_stream_source(spec: StreamSpec):
    """A FrameSource: a looped file for video files, else what open_source makes (cameras, URLs;
    URLs keep reconnecting, including after a normal end, until the actor is stopped)."""
    from ..engine.stream import open_source

    if describe_kind(spec.source) == "video":
        return LoopingVideoSource(spec.source)
    if describe_kind(spec.source) == "url":
        options = {"max_attempts": 10**9, "reconnect_on_eof": True, "log": lambda m: None, **spec.url_options}
        return open_source(spec.source, **options)
    return open_source(spec.source)


class StreamWorker:
    """The actor's body (wrapped by ray.remote in start_streams); see the module docstring."""

    def __init__(self, spec: StreamSpec, model: ModelSpec):
        self.spec, self.model = spec, model
        out = Path(spec.out_dir)
        self.jsonl_path = out / f"{spec.name}.jsonl"
        self.starts = _count_start(out / f"{spec.name}.state.json")
        self.latest_sink = LatestFrameSink()
        self.state, self.problems, self.reconnects = "loading model", [], 0
        self.frames_before, self.dropped_before, self.sessions = 0, 0, 0
        self.sessions_without_frames = True
        self._stream = None
        self.jsonl = AppendJsonLinesSink(self.jsonl_path, spec.name)  # one for every session of this process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"stream-{spec.name}", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        try:
            seg = self._model().load_segmenter()
        except Exception as exc:  # noqa: BLE001 - reported on the page; Ray restarts are no cure
            self.state = "failed"
            self._problem(f"cannot load the model: {exc}")
            return
        delay = self.spec.restart_backoff_s
        while not self._stop.is_set():
            reason = self._session(seg)
            if self._stop.is_set():
                break
            if not self.sessions_without_frames:  # frames came: start again soon; else back off further
                delay = self.spec.restart_backoff_s
            self.state = "restarting"
            self._problem(f"{reason}; starting again in {delay:.1f} s")
            if self._stop.wait(delay):
                break
            delay = min(self.spec.max_restart_backoff_s, delay * 2)
        self.state = "stopped"

    def _model(self) -> ModelSpec:
        """The model as this stream loads it: with tracking, keeping the low-score detections the
        tracker needs (its report filter is then the model's usual threshold: `_min_score`)."""
        tracking = self.spec.tracking
        if tracking is None:
            return self.model
        low, _ = tracking.score_thresholds(self.model.score_threshold)
        return dataclasses.replace(self.model, load=self.model.load.replace(score_threshold=low))

    def _stream_options(self) -> dict:
        """seg.stream's min_score and tracking options for this stream."""
        tracking = self.spec.tracking
        if tracking is None:
            return {"min_score": self.spec.min_score}
        report = self.model.score_threshold if self.spec.min_score is None else self.spec.min_score
        return {"min_score": report, "track": True, "tracker": tracking.config, "interval": tracking.interval}

    def _session(self, seg) -> str:
        """Run the pipeline once; returns why it ended."""
        self.sessions_without_frames = True
        self.state = "connecting"
        try:
            source = open_stream_source(self.spec)
        except MaskrtError as exc:
            return str(exc)
        sinks = [self.jsonl, self.latest_sink]
        if self.spec.segment_seconds:
            sinks.append(SegmentedVideoSink(Path(self.spec.out_dir) / self.spec.name, self.spec.segment_seconds))
        try:
            with seg.stream(source, realtime=True, sinks=sinks, show_fps=True, **self._stream_options()) as stream:
                self._stream = stream
                self.state = "running"
                for _ in stream:
                    self.sessions_without_frames = False
            problems = stream.problems
            return problems[-1] if problems else "the source ended"
        except Exception as exc:  # noqa: BLE001 - the stream starts again
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            if self._stream is not None:
                self.frames_before += self._stream.stats.done
                self.dropped_before += self._stream.dropped
                self.reconnects += getattr(self._stream.source, "reconnects", 0)
            self._stream = None
            self.sessions += 1

    def _problem(self, message: str) -> None:
        self.problems = (self.problems + [f"{time.strftime('%H:%M:%S')} {message}"])[-5:]

    def latest(self, after: int = -1):
        """(seq, JPEG bytes) of the newest annotated frame if newer than `after`, else None."""
        return self.latest_sink.latest(after)

    def stats(self) -> dict:
        """JSON-ready figures for the page and /metrics (times in milliseconds)."""
        stream = self._stream
        summary = stream.stats.summary() if stream is not None else {"stages": {}}
        live = stream.stats if stream is not None else None
        source = stream.source if stream is not None else None
        return {
            "name": self.spec.name, "source": self.spec.source, "state": self.state,
            "fps": round(live.recent_fps(), 2) if live else 0.0,
            "frames": self.frames_before + (live.done if live else 0),
            "last_frame": self.jsonl.next_frame - 1,
            "dropped": self.dropped_before + (live.dropped if live else 0),
            "restarts": self.starts - 1, "sessions": self.sessions,
            "reconnects": self.reconnects + (getattr(source, "reconnects", 0) if source else 0),
            "stages": {k: v for k, v in summary["stages"].items() if k in SHOWN_STAGES},
            "problems": list(self.problems), "frame_age_s": self.latest_sink.age(),
            "size": self.latest_sink.size, "jsonl": str(self.jsonl_path),
        }

    def pid(self) -> int:
        import os

        return os.getpid()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.stop("service stopping")
        self._thread.join(timeout=10)


def _count_start(path: Path) -> int:
    """Increment and return the start count kept in `path` (written atomically)."""
    from ..engine.outputs import AtomicFile

    try:
        starts = int(json.loads(path.read_text())["starts"]) + 1
    except (OSError, ValueError, KeyError, TypeError):
        starts = 1
    with AtomicFile(path) as f:
        json.dump({"starts": starts}, f)
    return starts


def start_streams(specs: list[StreamSpec], model: ModelSpec, num_cpus: float = 1.0, into: dict | None = None) -> dict:
    """Create one named actor per spec (namespace "maskrt", restarted without limit when it dies);
    returns {name: handle} (`into`, filled as each starts, when given). The actors belong to the
    calling driver and end with it."""
    import ray

    # max_concurrency: stats() and latest() answer while stop() waits for the pipeline to finish
    remote = ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=4)(StreamWorker)
    handles = {} if into is None else into
    for spec in specs:
        handles[spec.name] = remote.options(name=spec.actor_name, namespace=NAMESPACE, num_cpus=num_cpus,
                                            get_if_exists=True).remote(spec, model)
    return handles


def stop_streams(handles: dict, timeout_s: float = 15.0) -> None:
    """Stop each stream (outputs closed) and end its actor for good."""
    import ray

    refs = [h.stop.remote() for h in handles.values()]
    try:
        ray.get(refs, timeout=timeout_s)
    except Exception:  # noqa: BLE001 - killed below in any case
        pass
    for handle in handles.values():
        ray.kill(handle, no_restart=True)
