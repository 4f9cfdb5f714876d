"""Image sets in chunks: a chunk's frame source, its part file, and joining parts into outputs.

A chunk of images [start, start + n) is segmented into JSON lines with the global frame indices
and file names `maskrt run SPEC --json` writes, so the parts of a set, concatenated in order,
are byte for byte the JSON lines of the whole set; COCO results are made from those lines with
the same sink `maskrt run --coco` uses.

Part file: one header line (JSON: settings, the chunk's [name, size, mtime_ns, sha256] rows,
problems, frames) then the chunk's JSON lines. It is renamed into place when complete, so it
existing means the chunk is done.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from ..engine.images import read_image
from ..engine.stream import CocoResultsSink, FrameSource
from ..engine.sources import Frame
from ..errors import InputError
from .records import file_stat, sha256_of


class ChunkSource(FrameSource):
    """Images `images` ((name for the JSON lines, absolute path) pairs) as frames start,
    start + 1, ...; like ImageSource, an unreadable image is skipped, listed in problems, and
    uses up its index. rows: each image's [name, size, mtime_ns, sha256], in order (None
    fields for a file that cannot be read at all), filled while reading."""

    kind = "images"

    def __init__(self, images: tuple[tuple[str, str], ...], start: int):
        super().__init__(f"{len(images)} images from {start}")
        self.images, self.start = images, start
        self.expected_frames = len(images)
        self.rows: list[list] = []

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for offset, (name, path) in enumerate(self.images):
            if stop.is_set():
                return
            try:
                stat = file_stat(path)
                self.rows.append([name, stat["size"], stat["mtime_ns"], sha256_of(path)])
            except OSError:
                self.rows.append([name, None, None, None])
            try:
                image = read_image(path)
            except InputError as exc:
                self.problems.append(f"skipped: {exc}")
                continue
            yield Frame(self.start + offset, None, image, name)


def part_path(parts: Path, key: str) -> Path:
    return parts / f"{key}.jsonl"


def write_part(tmp: Path, header: dict, body: Path | None) -> Path:
    """tmp/part: the header line, then the body's JSON lines (none when no frame was written)."""
    path = tmp / "part"
    with open(path, "wb") as out:
        out.write((json.dumps(header, separators=(",", ":")) + "\n").encode("utf-8"))
        if body is not None and body.exists():
            with open(body, "rb") as src:
                shutil.copyfileobj(src, out)
    return path


def read_header(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def part_is_current(path: Path, images: tuple[tuple[str, str], ...], settings: dict) -> dict | None:
    """The header of a part made with these settings from these images, unchanged since; else None."""
    header = read_header(path)
    if header is None or header.get("settings") != settings:
        return None
    rows = header.get("files") or []
    if [row[0] for row in rows] != [name for name, _ in images]:
        return None
    try:
        for row, (_, file) in zip(rows, images):
            stat = file_stat(file)
            if [row[1], row[2]] != [stat["size"], stat["mtime_ns"]]:
                return None
    except OSError:
        return None
    return header


def join_parts(parts: list[Path], jsonl: Path, coco: Path | None) -> None:
    """Concatenate the parts' JSON lines into `jsonl`; with `coco`, also the COCO results JSON
    of those lines (image_id = frame index), streamed one line at a time."""
    sink = CocoResultsSink(coco) if coco is not None else None
    with open(jsonl, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                src.readline()  # the header
                for line in src:
                    out.write(line)
                    if sink is not None:
                        record = json.loads(line)
                        sink.write(SimpleNamespace(index=record["frame"], record=record))
    if sink is not None:
        sink.close(keep=True)
