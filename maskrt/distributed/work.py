"""The worker: one loaded engine, reused for every unit it is given (a plain class; the Ray path
makes it an actor, the local path calls it in-process: one code path).

Each attempt at a unit: take the unit's lock, count the attempt, stop if the unit is already
finished (its completion record, or its part, exists: a retried task re-executed after it had
written everything), else write the outputs into a fresh temporary folder, rename them into
place, write the completion record last, and return a small result dict. Errors that concern
one input (unreadable, truncated, damaged) are returned as that unit's failure, never raised,
so one bad input never stops the others. A unit whose attempts all died (the process crashed
or was killed, the node went away) is reported failed after `max_attempts`.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

from .. import __version__
from ..artifact import MANIFEST_NAME
from ..errors import EngineError, MaskrtError
from .image_sets import ChunkSource, join_parts, part_is_current, part_path, read_header, write_part
from .records import commit_file, file_stat, finished_record, listing_sha256, sha256_of, write_record
from .settings import JobSettings, Unit
from .state import fault_point, fresh_tmp, mark_attempt, parts_dir, unit_lock

PROGRESS_EVERY_S = 1.0


class Worker:
    """settings: the job (see JobSettings). progress: None, or a callable(unit key, frames done)
    called about once a second while a unit runs (the Ray path passes an actor method)."""

    def __init__(self, settings: JobSettings, progress=None):
        self.settings = settings
        self.progress = progress
        self.out = Path(settings.out_dir)
        self._segmenter = None

    def where(self) -> dict:
        """Where this worker runs: host, pid and (under Ray) node id."""
        info = {"host": socket.gethostname(), "pid": os.getpid()}
        if "ray" in sys.modules:
            import ray

            if ray.is_initialized():
                info["node"] = ray.get_runtime_context().get_node_id()
        return info

    def ready(self) -> dict:
        """Load the engine now (so a bad engine path fails the job at once); where() of this worker."""
        self.segmenter()
        return self.where()

    def segmenter(self):
        if self._segmenter is None:
            from ..api import load_with

            s, host = self.settings, socket.gethostname()
            manifest = Path(s.engine) / MANIFEST_NAME
            if not manifest.is_file():
                raise EngineError(f"engine {s.engine} is not reachable on {host}: put it on storage every worker sees")
            if sha256_of(manifest) != s.engine_sha256:
                raise EngineError(f"engine {s.engine} on {host} is not the driver's (manifest sha256 differs)")
            self._segmenter = load_with(s.engine, s.load)
        return self._segmenter

    def process(self, unit: Unit) -> dict:
        """Run one attempt at `unit`; returns {"key", "kind", "input", "status": "done" | "skipped"
        | "failed", "attempts", "frames", "problems", "reason" (failed), "seconds", host/pid/node}."""
        t0 = time.perf_counter()
        base = {"key": unit.key, "kind": unit.kind, "input": unit.item.name, "attempts": 0, "frames": 0,
                "problems": [], **self.where()}
        try:
            with unit_lock(self.out, unit.key, self.settings.lock_timeout):
                base["attempts"] = attempt = mark_attempt(self.out, self.settings.job, unit.key)
                if attempt > self.settings.max_attempts:
                    return {**base, "status": "failed",
                            "reason": f"the worker died during each of {attempt - 1} attempts"}
                fault_point("start", unit.key)
                fault_point("hold", unit.key)
                result = self._finished(unit) or self._attempt(unit)
        except MaskrtError as exc:
            result = {"status": "failed", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - an OS error or a bug: this unit fails, the job goes on
            text = str(exc).splitlines()[0] if str(exc) else ""
            result = {"status": "failed", "reason": f"{type(exc).__name__}: {text}".rstrip(": ")}
        return {**base, **result, "seconds": round(time.perf_counter() - t0, 3)}

    def _finished(self, unit: Unit) -> dict | None:
        """The result of a unit finished earlier (this job: a re-execution; an earlier run: a skip)."""
        if unit.kind == "chunk":
            header = part_is_current(part_path(parts_dir(self.out), unit.key), unit.images,
                                     self.settings.output_settings())
            if header is None:
                return None
            return {"status": "done", "frames": header["frames"], "problems": header["problems"],
                    "earlier_run": header.get("job") != self.settings.job}
        record = finished_record(self.out, unit.item, self.settings.output_settings())
        if record is None:
            return None
        status = "done" if record.get("job") == self.settings.job else "skipped"
        return {"status": status, "frames": record["frames"], "problems": record["problems"]}

    def _attempt(self, unit: Unit) -> dict:
        tmp = fresh_tmp(self.out, unit.key)
        try:
            if unit.kind == "video":
                return self._video(unit, tmp)
            if unit.kind == "chunk":
                return self._chunk(unit, tmp)
            return self._assemble(unit, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _pipeline(self, unit: Unit, source, sinks) -> tuple[int, list[str]]:
        """Stream `source` through the engine into `sinks` (as `maskrt run` does); (frames, problems)."""
        from ..engine.stream import Pipeline

        try:
            pipeline = Pipeline(self.segmenter(), source, batch_size=self.settings.load.batch_size, sinks=sinks)
        except BaseException:
            source.close()
            raise
        last = time.monotonic()
        for _ in pipeline.run():
            if self.progress is not None and time.monotonic() - last > PROGRESS_EVERY_S:
                self.progress(unit.key, pipeline.stats.done)
                last = time.monotonic()
        if self.progress is not None:
            self.progress(unit.key, pipeline.stats.done)
        return pipeline.stats.done, pipeline.problems

    def _video(self, unit: Unit, tmp: Path) -> dict:
        from ..engine.stream import CocoResultsSink, JsonLinesSink, VideoSink, open_source

        item, s = unit.item, self.settings
        before = file_stat(item.path)
        sha = sha256_of(item.path)
        files = {f"{item.name}.jsonl": tmp / "out.jsonl"}
        sinks = [JsonLinesSink(files[f"{item.name}.jsonl"])]
        if s.coco:
            files[f"{item.name}.coco.json"] = tmp / "out.coco.json"
            sinks.append(CocoResultsSink(files[f"{item.name}.coco.json"]))
        if s.video:
            files[f"{item.name}.mp4"] = tmp / "out.mp4"
            sinks.append(VideoSink(files[f"{item.name}.mp4"]))
        frames, problems = self._pipeline(unit, open_source(item.path), sinks)
        if file_stat(item.path) != before:
            raise MaskrtError(f"{item.spec} changed while it was being read")
        facts = {"kind": "video", "spec": item.spec, "path": item.path, **before, "sha256": sha}
        return self._commit(unit, tmp, files, facts, frames, problems)

    def _chunk(self, unit: Unit, tmp: Path) -> dict:
        from ..engine.stream import JsonLinesSink

        source = ChunkSource(unit.images, unit.start)
        body = tmp / "part.jsonl"
        frames, problems = self._pipeline(unit, source, [JsonLinesSink(body)])
        header = {"settings": self.settings.output_settings(), "files": source.rows, "problems": problems,
                  "frames": frames, "job": self.settings.job}
        commit_file(write_part(tmp, header, body), part_path(parts_dir(self.out), unit.key))
        fault_point("after-rename", unit.key)
        return {"status": "done", "frames": frames, "problems": problems}

    def _assemble(self, unit: Unit, tmp: Path) -> dict:
        item, s = unit.item, self.settings
        parts = [part_path(parts_dir(self.out), f"{item.name}.part{k:05d}") for k in range(unit.count)]
        headers = [read_header(part) for part in parts]  # each checked against its images by its chunk
        for k, header in enumerate(headers):
            if header is None or header.get("settings") != s.output_settings():
                raise MaskrtError(f"{item.spec}: part {k} is missing or out of date; run the command again")
        frames = sum(h["frames"] for h in headers)
        problems = [p for h in headers for p in h["problems"]]
        if frames == 0:
            raise MaskrtError(f"no image of {item.spec} could be read ({problems[0] if problems else 'no images'})")
        files = {f"{item.name}.jsonl": tmp / "out.jsonl"}
        if s.coco:
            files[f"{item.name}.coco.json"] = tmp / "out.coco.json"
        join_parts(parts, tmp / "out.jsonl", tmp / "out.coco.json" if s.coco else None)
        rows = [row for h in headers for row in h["files"]]
        facts = {"kind": "images", "spec": item.spec, "path": item.path, "size": sum(r[1] or 0 for r in rows),
                 "sha256": listing_sha256(rows), "files": rows}
        result = self._commit(unit, tmp, files, facts, frames, problems)
        for part in parts:
            part.unlink(missing_ok=True)
        return result

    def _commit(self, unit: Unit, tmp: Path, files: dict, facts: dict, frames: int, problems: list) -> dict:
        """Rename the finished outputs into place (JSON lines last), then write the record."""
        s = self.settings
        outputs = {}
        for name in sorted(files, key=lambda n: n.endswith(".jsonl")):
            if files[name].exists():
                outputs[name] = commit_file(files[name], self.out / name)
                fault_point("after-rename", unit.key)
        record = {"input": facts, "engine": {"path": s.engine, "manifest_sha256": s.engine_sha256},
                  "settings": s.output_settings(), "outputs": outputs, "frames": frames, "problems": problems,
                  "job": s.job, "finished": time.time(), "maskrt": __version__, **self.where()}
        write_record(self.out, unit.item.name, record, tmp)
        fault_point("after-record", unit.key)
        return {"status": "done", "frames": frames, "problems": problems}

