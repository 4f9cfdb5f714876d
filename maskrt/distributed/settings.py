"""What every worker needs to know about the job, and the units of work it is handed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..options import LoadOptions
from .inputs import Input

DEFAULT_IMAGES_PER_TASK = 64


@dataclass(frozen=True)
class JobSettings:
    """engine: absolute engine directory (on storage every worker sees); engine_sha256: sha256 of
    its manifest.json as the driver read it; load: how each worker loads it (maskrt.options;
    num_threads: inference threads per worker; min_size / max_size: the input-size policy applied
    when the engine is loaded, None: the engine's own); video / coco: write the annotated MP4
    (videos) / COCO results JSON besides the JSON lines; images_per_task: images per chunk of an
    image set; max_attempts: attempts at one unit in one job before it is reported failed;
    lock_timeout: seconds an attempt waits for an earlier one still holding the unit."""

    out_dir: str
    job: str
    engine: str
    engine_sha256: str
    load: LoadOptions = LoadOptions(score_threshold=0.5)
    video: bool = True
    coco: bool = False
    images_per_task: int = DEFAULT_IMAGES_PER_TASK
    max_attempts: int = 3
    lock_timeout: float = 120.0

    def output_settings(self) -> dict:
        """What changes the bytes of the outputs (kept in completion records)."""
        o = self.load
        return {"engine_sha256": self.engine_sha256, "score_threshold": o.score_threshold, "batch": o.batch_size,
                "min_size": o.min_size, "max_size": o.max_size, "video": self.video, "coco": self.coco}


@dataclass(frozen=True)
class Unit:
    """One task. kind "video": a whole video, streamed frame by frame; "chunk": images
    [start, start + len(images)) of an image set (global frame indices); "assemble": join an
    image set's `count` chunks into its outputs."""

    kind: str
    item: Input
    index: int = 0
    count: int = 1
    start: int = 0
    images: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        if self.kind == "video":
            return self.item.name
        if self.kind == "chunk":
            return f"{self.item.name}.part{self.index:05d}"
        return f"{self.item.name}.assemble"


def image_chunks(item: Input, per_task: int, batch: int) -> list[Unit]:
    """Split an image set into chunk units of `per_task` images, rounded up to a multiple of
    `batch` so every inference batch is the one `maskrt run --batch` would form."""
    size = max(batch, -(-max(1, per_task) // batch) * batch)
    starts = range(0, len(item.images), size)
    bare = replace(item, images=())  # a chunk carries its own images only, not the whole listing
    return [Unit("chunk", bare, index=k, count=len(starts), start=s, images=item.images[s:s + size])
            for k, s in enumerate(starts)]
