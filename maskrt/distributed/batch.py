"""`maskrt batch`: segment many inputs into OUT, every output exactly once, locally or on Ray.

The driver expands the sources (inputs.py), resolves the engine once (an engine directory as
given, or the cached CPU engine of a checkpoint) and hashes its manifest, skips inputs whose
completion record says they are finished (records.py), and hands the rest out as units: a video
is one unit, streamed frame by frame inside one worker; an image set is split into chunks, and
when all its chunks are back one more unit joins them. Without --ray the same Worker runs the
units in this process, one after another (LocalExecutor); with --ray they go to Ray actors
(ray_pool.RayExecutor). A progress bar counts inputs and shows frames and fps across workers.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import MaskrtError
from ..options import LoadOptions
from ..progress import progress_bar
from .inputs import Input, expand_sources
from .records import finished_record, sha256_of
from .settings import DEFAULT_IMAGES_PER_TASK, JobSettings, Unit, image_chunks
from .state import cleanup, driver_lock, state_dir
from .summary import InputResult, Summary
from .work import Worker


@dataclass
class BatchOptions:
    """ray: None runs locally in this process; "" starts (or, with RAY_ADDRESS, joins) Ray on
    this machine; anything else is the address of a running cluster (ray.init(address=...)).
    workers: actors (Ray; default: the cluster's CPUs / cpus_per_worker); load: how each worker
    loads the engine (load.num_threads: inference threads per worker, default cpus_per_worker
    under Ray, all cores locally)."""

    sources: list[str]
    model: str
    out_dir: Path
    ray: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    load: LoadOptions = LoadOptions(score_threshold=0.5)
    video: bool = True
    coco: bool = False
    images_per_task: int = DEFAULT_IMAGES_PER_TASK
    max_attempts: int = 3
    quiet: bool = False
    summary_path: Path | None = None


class LocalExecutor:
    """The units one after another in this process, through the same Worker as the Ray path."""

    mode = "local"

    def __init__(self, settings: JobSettings):
        self._frames: dict[str, int] = {}
        self.worker = Worker(settings, progress=self._frames.__setitem__)
        self.workers = 1
        self._queue: deque[Unit] = deque()

    def start(self) -> None:
        self.worker.ready()

    def submit(self, unit: Unit) -> None:
        self._queue.append(unit)

    def busy(self) -> bool:
        return bool(self._queue)

    def next(self, timeout: float) -> list[dict]:
        return [self.worker.process(self._queue.popleft())]

    def frames(self) -> int:
        return sum(self._frames.values())

    def close(self) -> None:
        pass


def resolve_engine(opts: BatchOptions) -> tuple[Path, str]:
    """(absolute engine directory, sha256 of its manifest.json), checked (read_manifest)."""
    from ..api import cached_cpu_engine
    from ..artifact import MANIFEST_NAME, is_engine_dir, read_manifest

    if is_engine_dir(opts.model):
        engine = Path(os.path.abspath(opts.model))
        read_manifest(engine)
    elif opts.load.backend in ("auto", "openvino") and opts.load.device == "cpu":
        engine = Path(os.path.abspath(cached_cpu_engine(opts.model, progress=not opts.quiet)))
    else:
        raise MaskrtError("maskrt batch runs engines: give an engine directory (maskrt build), or a checkpoint "
                          "for the CPU engine")
    return engine, sha256_of(engine / MANIFEST_NAME)


def _check(opts: BatchOptions) -> None:
    opts.load.checked()
    for name, value, low in (("--batch", opts.load.batch_size, 1), ("--images-per-task", opts.images_per_task, 1),
                             ("--max-attempts", opts.max_attempts, 1), ("--workers", opts.workers or 1, 1)):
        if value < low:
            raise MaskrtError(f"{name} must be at least {low}, got {value}")
    if opts.cpus_per_worker <= 0:
        raise MaskrtError(f"--cpus-per-worker must be positive, got {opts.cpus_per_worker}")
    if Path(opts.out_dir).exists() and not Path(opts.out_dir).is_dir():
        raise MaskrtError(f"--out-dir {opts.out_dir} is a file; give a folder")


def run_batch(opts: BatchOptions) -> Summary:
    """Run the job; returns its Summary (also printed unless quiet, and written to summary_path)."""
    _check(opts)
    out = Path(os.path.abspath(opts.out_dir))
    expansion = expand_sources(opts.sources, out)
    if not expansion.inputs:
        reason = expansion.missing[0][1] if expansion.missing else "no sources given"
        raise MaskrtError(f"no input to segment ({reason})")
    engine, sha = resolve_engine(opts)
    out.mkdir(parents=True, exist_ok=True)
    with driver_lock(out):
        threads = opts.load.num_threads or (max(1, int(opts.cpus_per_worker)) if opts.ray is not None else None)
        settings = JobSettings(out_dir=str(out), job=uuid.uuid4().hex[:12], engine=str(engine), engine_sha256=sha,
                               load=opts.load.replace(num_threads=threads), video=opts.video, coco=opts.coco,
                               images_per_task=opts.images_per_task, max_attempts=opts.max_attempts)
        job = _Job(settings, opts, expansion.inputs)
        finished = False
        try:
            summary = job.run(expansion.missing)
            finished = True
        finally:  # the workers are stopped (job.run closed its executor): nothing writes any more
            if not cleanup(out, finished) and not opts.quiet:
                print(f"maskrt: warning: a worker still held a unit after the job; {state_dir(out)} was left as "
                      "it was (the next run cleans it)", file=sys.stderr)
            if job.wedged and sys.exc_info()[0] is not None:  # our own Ray's client may hang at exit (local_ray)
                from ..local_ray import leave_as_main_would

                leave_as_main_would()
    if not opts.quiet:
        summary.print()
    if opts.summary_path is not None:
        summary.write_json(opts.summary_path)
    return summary


class _Job:
    """The driver loop: skip finished inputs, hand out units, follow results to a Summary.
    wedged: the executor's own Ray could not be shut down cleanly (leave at once)."""

    def __init__(self, settings: JobSettings, opts: BatchOptions, inputs: list[Input]):
        self.settings, self.opts, self.inputs = settings, opts, inputs
        self.wedged = False
        self.results: dict[str, InputResult] = {}
        self.chunks: dict[str, list[dict]] = {}  # image set name -> its chunk results so far
        self.expected: dict[str, int] = {}  # image set name -> its number of chunks
        self.summary = Summary()

    def run(self, missing: list[tuple[str, str]]) -> Summary:
        units = self._plan()
        executor = self._executor(len(units))
        unit_bar = {"disable": self.opts.quiet, "total": len(self.inputs), "unit": "input", "dynamic_ncols": True}
        t0 = time.perf_counter()
        try:
            with progress_bar(**unit_bar) as bar:
                bar.update(len(self.results))
                if units:
                    executor.start()
                    t0 = time.perf_counter()
                    for unit in units:
                        executor.submit(unit)
                self._drive(executor, bar)
        finally:
            self.wedged = executor.close() is False
        self.summary.seconds = time.perf_counter() - t0 if units else 0.0
        self.summary.workers, self.summary.mode = executor.workers if units else 0, executor.mode
        self.summary.results = [self.results[i.name] for i in self.inputs]
        self.summary.results += [InputResult(spec, "failed", reason=reason) for spec, reason in missing]
        return self.summary

    def _plan(self) -> list[Unit]:
        units = []
        for item in self.inputs:
            record = finished_record(Path(self.settings.out_dir), item, self.settings.output_settings())
            if record is not None:
                self.results[item.name] = InputResult(item.spec, "skipped", item.name, record.get("frames", 0),
                                                      problems=record.get("problems", []))
            elif item.kind == "video":
                units.append(Unit("video", item))
            else:
                chunks = image_chunks(item, self.settings.images_per_task, self.settings.load.batch_size)
                self.chunks[item.name], self.expected[item.name] = [], len(chunks)
                units.extend(chunks)
        return units

    def _executor(self, units: int):
        if self.opts.ray is None:
            return LocalExecutor(self.settings)
        from .ray_pool import RayExecutor

        return RayExecutor(self.settings, self.opts.ray or None, self.opts.workers, self.opts.cpus_per_worker,
                           limit=max(1, units))

    def _drive(self, executor, bar) -> None:
        by_name = {item.name: item for item in self.inputs}
        shown = 0.0
        while executor.busy():
            for result in executor.next(timeout=0.5):
                self.summary.reexecutions += max(0, result.get("attempts", 1) - 1)
                item = by_name[result["input"]]
                if result["kind"] == "chunk":
                    resolved = self._chunk_done(item, result, executor)
                else:
                    resolved = self._input_done(item, result)
                if resolved:
                    bar.update(1)
            if time.monotonic() - shown > 0.5:
                frames = executor.frames()
                failed = sum(1 for r in self.results.values() if r.status == "failed")
                bar.set_postfix(frames=frames if frames is not None else "?", failed=failed,
                                retried=self.summary.reexecutions, refresh=False)
                shown = time.monotonic()

    def _input_done(self, item: Input, result: dict) -> bool:
        status = result["status"]
        if result["kind"] == "video" and status == "done":
            self.summary.frames += result.get("frames", 0)
        self.results[item.name] = InputResult(item.spec, status, item.name, result.get("frames", 0),
                                              result.get("reason"), list(result.get("problems", [])))
        return True

    def _chunk_done(self, item: Input, result: dict, executor) -> bool:
        """Collect a chunk's result; when the set's last chunk is back, hand out the join (or
        report the set failed, naming its first failed chunk). True when the input is resolved."""
        done = self.chunks[item.name]
        done.append(result)
        if result["status"] == "done" and not result.get("earlier_run"):
            self.summary.frames += result.get("frames", 0)
        count = self.expected[item.name]
        if len(done) < count:
            return False
        failed = sorted((r for r in done if r["status"] == "failed"), key=lambda r: r["key"])
        if not failed:
            executor.submit(Unit("assemble", item, count=count))
            return False
        reason = f"chunk {int(failed[0]['key'].rsplit('.part', 1)[1])}: {failed[0].get('reason')}"
        self.results[item.name] = InputResult(item.spec, "failed", item.name, reason=reason)
        return True
