"""`maskrt run --track` and `maskrt eval --video --track`: ids in every output, intervals, the two
score thresholds, and every bad tracking option as one line, exit 2, nothing written.

The bundled shapes model at min size 128 on a 12-frame 96x128 clip (the engine is built once per
session and cached)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

import maskrt
from maskrt.commands import run as run_command
from maskrt.engine.stream.tracking import TrackingOptions
from maskrt.data import generate_video
from maskrt.tracking import TrackerConfig
from tests.cli_runner import run_in_process

BUNDLED = Path(maskrt.__file__).resolve().parent / "assets" / "shapes_r18fpn64.safetensors"
SMALL = ["--min-size", "128", "--max-size", "192"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    maskrt.load(BUNDLED, min_size=128, max_size=192)  # the engine built before any run
    return generate_video(tmp_path_factory.mktemp("track") / "clip.mp4", num_frames=12, fps=10, size=(96, 128),
                          seed=4, num_objects=(2, 3))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_track_interval_writes_ids_and_marks_carried_instances(clip, tmp_path):
    out = tmp_path / "out"
    proc = run_in_process("run", str(clip), "--model", str(BUNDLED), *SMALL, "--track", "--interval", "3",
                          "--out", str(out / "t.mp4"), "--json", str(out / "t.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "maskrt: tracking: the engine ran on 4 frames, 8 carried by the tracker" in proc.stderr
    records = read_jsonl(out / "t.jsonl")
    assert [r["frame"] for r in records] == list(range(12))
    instances = [(r["frame"], inst) for r in records for inst in r["instances"]]
    assert instances and all("track_id" in inst for _, inst in instances)
    assert all(inst.get("propagated", False) == (frame % 3 != 0) for frame, inst in instances)
    assert all(inst["track_id"] >= 1 for frame, inst in instances if frame % 3)  # carried: confirmed tracks only
    ids = [{inst["track_id"] for inst in r["instances"] if inst["track_id"] > 0} for r in records]
    assert ids[3] and ids[3] == ids[4] == ids[5]  # the same objects, carried with their ids
    with av.open(str(out / "t.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_run_track_reports_after_association_and_lowers_the_models_threshold(clip, tmp_path, monkeypatch):
    loaded = []
    real = run_command.load_with
    monkeypatch.setattr(run_command, "load_with", lambda model, options: loaded.append(options) or real(model, options))
    out = tmp_path / "r.jsonl"
    proc = run_in_process("run", str(clip), "--model", str(BUNDLED), *SMALL, "--track", "--score-threshold", "0.9",
                          "--json", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert loaded[0].score_threshold == pytest.approx(0.1)  # the model keeps what ByteTrack's second stage needs
    scores = [inst["score"] for r in read_jsonl(out) for inst in r["instances"]]
    assert scores and min(scores) >= 0.9  # --score-threshold filters what is written


def test_score_thresholds():
    assert TrackingOptions(TrackerConfig(), 1).score_thresholds(0.5) == (0.1, 0.5)
    assert TrackingOptions(TrackerConfig(track_low_thresh=0.3, track_high_thresh=0.6), 1).score_thresholds(0.2) == (0.2, 0.2)


BAD = {
    "interval 0": (["--track", "--interval", "0"], "--interval must be a positive integer or 'auto', got 0"),
    "interval negative": (["--track", "--interval", "-1"], "--interval must be a positive integer or 'auto'"),
    "interval not an integer": (["--track", "--interval", "1.5"], "got '1.5'"),
    "interval a word": (["--track", "--interval", "often"], "got 'often'"),
    "interval auto offline": (["--track", "--interval", "auto"], "--interval auto needs real time (--realtime"),
    "interval without track": (["--interval", "2"], "--interval apply to tracking: add --track"),
    "tracker missing": (["--track", "--tracker", "{tmp}/none.yaml"], "none.yaml: no such file"),
    "tracker malformed": (["--track", "--tracker", "{tmp}/bad.yaml"], "not valid YAML (line 2"),
    "tracker unknown key": (["--track", "--tracker", "{tmp}/unknown.yaml"], "unknown key 'track_thresh'"),
    "tracker out of range": (["--track", "--tracker", "{tmp}/range.yaml"], "track_high_thresh must be a number in [0, 1]"),
    "tracker not a mapping": (["--track", "--tracker", "{tmp}/list.yaml"], "must be a mapping"),
    "match unknown": (["--track", "--match", "iou"], "--match must be one of box, mask, got 'iou'"),
    "match mask without track": (["--match", "mask"], "--match apply to tracking: add --track"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tracking_options_are_one_line_and_write_nothing(clip, tmp_path, case):
    (tmp_path / "bad.yaml").write_text("track_high_thresh: 0.5\n  match: [box\n")
    (tmp_path / "unknown.yaml").write_text("track_thresh: 0.5\n")
    (tmp_path / "range.yaml").write_text("track_high_thresh: 2\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    options, message = BAD[case]
    out = tmp_path / "out"
    out.mkdir()
    proc = run_in_process("run", str(clip), "--model", str(BUNDLED), *SMALL,
                          *[o.format(tmp=tmp_path) for o in options],
                          "--out", str(out / "t.mp4"), "--json", str(out / "t.jsonl"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("maskrt: error: "), proc.stderr
    assert message in lines[0]
    assert list(out.iterdir()) == []


def test_eval_video_track_scores_the_clip(clip, tmp_path):
    out = tmp_path / "res" / "results.json"
    proc = run_in_process("eval", "--video", str(clip), "--annotations", str(clip.with_suffix(".json")),
                          "--model", str(BUNDLED), *SMALL, "--track", "--interval", "2", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("maskrt: box AP ") and "(12 frames)" in lines[0]
    assert lines[1].startswith("box   HOTA") and lines[2].startswith("mask  HOTA") and "ID switches" in lines[2]
    metrics = json.loads((tmp_path / "res" / "results.metrics.json").read_text())
    assert metrics["frames"] == 12 and metrics["interval"] == 2 and metrics["engine_frames"] == 6
    assert metrics["tracker"]["track_buffer"] == 30
    for by in ("box", "mask"):
        s = metrics["tracking"][by]
        assert 0.0 <= s["HOTA"] <= 1.0 and 0.0 <= s["IDF1"] <= 1.0 and s["IDSW"] >= 0
    assert metrics["tracking"]["box"]["IDF1"] > 0.5  # the bundled model tracks these shapes
    results = json.loads(out.read_text())
    assert results and all("track_id" in r and 0 <= r["image_id"] < 12 for r in results)
    assert any(r.get("propagated") for r in results)


EVAL_BAD = {
    "no annotations": (["--video", "{clip}"], "--video needs --annotations"),
    "with coco": (["--video", "{clip}", "--annotations", "{gt}", "--coco", "{gt}"], "either --video"),
    "track without video": (["--coco", "{gt}", "--images", "{tmp}", "--track"], "--track apply to --video"),
    "missing annotations": (["--video", "{clip}", "--annotations", "{tmp}/none.json"], "no such file"),
    "no track ids": (["--video", "{clip}", "--annotations", "{tmp}/plain.json", "--track"], "have no track_id"),
    "bad interval": (["--video", "{clip}", "--annotations", "{gt}", "--track", "--interval", "0"], "--interval must"),
}


@pytest.mark.parametrize("case", list(EVAL_BAD))
def test_eval_video_bad_input(clip, tmp_path, case):
    gt = json.loads(clip.with_suffix(".json").read_text())
    for ann in gt["annotations"]:
        del ann["track_id"]
    (tmp_path / "plain.json").write_text(json.dumps(gt))
    options, message = EVAL_BAD[case]
    out = tmp_path / "out"
    out.mkdir()
    fill = {"clip": clip, "gt": clip.with_suffix(".json"), "tmp": tmp_path}
    proc = run_in_process("eval", "--model", str(BUNDLED), *SMALL, *[o.format(**fill) for o in options],
                          "--out", str(out / "r.json"), "--quiet")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("maskrt: error: "), proc.stderr
    assert message in lines[0]
    assert list(out.iterdir()) == []
