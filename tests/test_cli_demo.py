"""`maskrt demo`: a generated video in, an H.264 MP4 and JSON lines out, fps reported."""

from __future__ import annotations

import json

import av

from maskrt.cli import main


def test_demo_writes_video_and_jsonl(small_checkpoint, tmp_path, capsys):
    assert main(["demo", "--model", small_checkpoint, "--out-dir", str(tmp_path), "--frames", "6"]) == 0
    err = capsys.readouterr().err
    assert "fps" in err and str(tmp_path / "out.mp4") in err
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(video=0))
    assert len(frames) == 6 and (frames[0].height, frames[0].width) == (240, 320)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(6))


def test_demo_rejects_bad_frame_count(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "--frames", "0"]) == 2
    assert "--frames must be an integer from 1 to 100000" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


class _Loaded(Exception):
    pass


def test_demo_runs_the_bundled_model_in_int8_and_others_as_asked(small_checkpoint, tmp_path, monkeypatch):
    """The bundled model's int8 engine passed its accuracy gate (benchmarks/results/INT8.md), so
    the demo uses it; other checkpoints keep maskrt.load's default (fp32) unless told."""
    from maskrt.commands import demo

    asked = []

    def fake_load(model, **kwargs):
        asked.append((str(model), kwargs["precision"]))
        raise _Loaded

    monkeypatch.setattr(demo, "load", fake_load)
    for model, precision in [(demo.DEFAULT_MODEL, None), (small_checkpoint, None), (demo.DEFAULT_MODEL, "fp32")]:
        try:
            demo.run_demo(model, tmp_path / "d", num_frames=1, precision=precision)
        except _Loaded:
            pass
    assert asked == [(str(demo.DEFAULT_MODEL), "int8"), (small_checkpoint, None), (str(demo.DEFAULT_MODEL), "fp32")]
