"""maskrt's output writers as one table, for the class tests of tests/safeio: each writes a
complete output to a path, with a hook (boom) called in the middle of writing; a reader
(json, PyAV, safetensors) gives back a fact to compare with EXPECTED."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import torch

from maskrt import safeio
from maskrt.data import generate_video
from maskrt.engine.outputs import AtomicFile
from maskrt.engine.stream import CocoResultsSink, JsonLinesSink, StreamStats, VideoSink
from maskrt.model import save_checkpoint


class Boom(Exception):
    """The failure injected in the middle of a write."""


def _work(i, rendered=None):
    """A pipeline Work stand-in: a 64x64 noise frame and a record of ~2 KB (so that every writer
    writes past the 1 KiB file-size limit of the full-disk test)."""
    record = {"frame": i, "time": i / 10, "instances": [{"bbox": [1, 2, 3, 4], "score": 0.5, "category_id": 1,
                                                         "segmentation": {"size": [4, 4], "counts": "0" * 2000}}]}
    if rendered is None:
        rendered = np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return SimpleNamespace(index=i, time=i / 10, name=None, rendered=rendered, record=record)


def _raise_boom():
    raise Boom


def _sink_writer(make):
    def write(path, boom=None):
        sink = make(path)
        sink.open(10)
        try:
            for i in range(3):
                sink.write(_work(i))
                if boom and i == 1:
                    boom()
        except BaseException:
            sink.close(False)  # what the pipeline does when a stage fails
            raise
        sink.close(True)
    return write


def _output_text(path, boom=None):
    with safeio.Output(path) as out:
        f = out.open("w")
        f.write("x" * 5000)
        if boom:
            boom()
        f.write("done\n")


def _atomic_file(path, boom=None):
    with AtomicFile(path, "w") as f:
        f.write("y" * 5000)
        if boom:
            boom()
        f.write("done\n")


def _stats(path, boom=None):
    stats = StreamStats()
    for stage in ("decode", "preprocess", "infer", "postprocess", "render", "encode", "latency"):
        stats.add(stage, 0.01)
    if boom:
        summary = stats.summary
        stats.summary = lambda: (boom(), summary())[1]
    stats.write_json(path)


def _after(module, name, boom):
    """Patch module.name to run as usual, then call boom (the failure after real writes)."""
    real = getattr(module, name)

    def patched(*args, **kwargs):
        result = real(*args, **kwargs)
        boom()
        return result

    setattr(module, name, patched)
    return lambda: setattr(module, name, real)


def _checkpoint(path, boom=None):
    import safetensors.torch

    undo = _after(safetensors.torch, "save_file", boom) if boom else (lambda: None)
    try:  # the temporary file is complete when boom hits: it must still go
        save_checkpoint(path, {"w": torch.arange(3000, dtype=torch.float32)}, classes=["a"])
    finally:
        undo()


def _video(path, boom=None):
    import maskrt.data.video as video

    undo = _after(video, "coco_document", boom) if boom else (lambda: None)
    try:  # the video is encoded (in its temporary file) when boom hits
        generate_video(path, num_frames=3, fps=5, size=(32, 48), seed=0)
    finally:
        undo()


def _read_text(path):
    return Path(path).read_text()


def _read_video(path):
    with av.open(str(path)) as c:
        return len([f for f in c.decode(c.streams.video[0])])


def _read_checkpoint(path):
    from safetensors.torch import load_file

    return load_file(str(path))["w"].shape[0]


# name, writer(path, boom), reader(path) -> a fact, extra files the writer makes, seekable (needs a regular file)
WRITERS = {
    "safeio.Output": (_output_text, _read_text, [], False),
    "AtomicFile": (_atomic_file, _read_text, [], False),
    "JsonLinesSink": (_sink_writer(JsonLinesSink), lambda p: [json.loads(x)["frame"] for x in _read_text(p).splitlines()],
                      [], False),
    "CocoResultsSink": (_sink_writer(CocoResultsSink), lambda p: len(json.loads(_read_text(p))), [], False),
    "VideoSink": (_sink_writer(VideoSink), _read_video, [], True),
    "StreamStats.write_json": (_stats, lambda p: json.loads(_read_text(p))["stages"]["infer"]["count"], [], False),
    "save_checkpoint": (_checkpoint, _read_checkpoint, [], True),
    "generate_video": (_video, _read_video, [".json"], True),
}
EXPECTED = {"safeio.Output": "x" * 5000 + "done\n", "AtomicFile": "y" * 5000 + "done\n", "JsonLinesSink": [0, 1, 2],
            "CocoResultsSink": 3, "VideoSink": 3, "StreamStats.write_json": 1, "save_checkpoint": 3000,
            "generate_video": 3}
NAMES = {"VideoSink": "o.mp4", "generate_video": "o.mp4", "save_checkpoint": "o.safetensors"}


def _target(tmp_path, name):
    return tmp_path / NAMES.get(name, "o.out")


class _FullDisk:
    """A file whose writes fail with ENOSPC once `room` bytes are used, and whose close fails
    too (the buffered bytes cannot be flushed), like a real file on a full disk."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data):
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(data)

    def flush(self):
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.f.flush()

    def close(self):
        self.f.close()
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)
