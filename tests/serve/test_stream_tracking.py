"""`maskrt serve --stream NAME=SOURCE --track`: a served stream's JSON lines carry track ids.

The stream worker runs in this process (no Ray: StreamWorker is the actor's plain body) on a
looped 96x128 clip with the bundled model at 128 px."""

from __future__ import annotations

import json

import pytest

from maskrt.cli import main
from maskrt.data import generate_video
from maskrt.engine.stream.tracking import TrackingOptions
from maskrt.options import LoadOptions
from maskrt.serve.model import ModelSpec
from maskrt.serve.streams import StreamWorker, parse_stream

from .conftest import BUNDLED, free_port, wait_for


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_tracked_stream_writes_ids_and_reports_at_the_models_threshold(tmp_path):
    clip = generate_video(tmp_path / "clip.mp4", num_frames=10, fps=10, size=(96, 128), seed=4, num_objects=(2, 3))
    spec = parse_stream(f"cam={clip}", str(tmp_path / "out"), tracking=TrackingOptions.options(interval=2))
    model = ModelSpec(str(BUNDLED), load=LoadOptions(score_threshold=0.5, min_size=128, max_size=128))
    worker = StreamWorker(spec, model)
    try:
        assert worker._model().load.score_threshold == pytest.approx(0.1)  # what ByteTrack needs
        jsonl = tmp_path / "out" / "cam.jsonl"
        wait_for(lambda: len(records(jsonl)) >= 12, timeout_s=180, what="12 frames of the tracked stream")
    finally:
        worker.stop()
    instances = [inst for r in records(jsonl) for inst in r["instances"]]
    assert instances and all("track_id" in inst for inst in instances)
    assert any(inst.get("propagated") for inst in instances) and any(inst["track_id"] > 0 for inst in instances)
    assert min(inst["score"] for inst in instances) >= 0.5  # reported at the service's --score-threshold


def test_track_without_a_stream_is_refused(capsys):
    assert main(["serve", "--model", str(BUNDLED), "--port", str(free_port()), "--track"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "maskrt: error: --track applies to the streams: add --stream NAME=SOURCE"
