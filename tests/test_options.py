"""One LoadOptions for every entry point, validated once; the CLI's choices come from maskrt.options."""

from __future__ import annotations

import argparse
import math

import pytest

from maskrt import options
from maskrt.cli import build_parser
from maskrt.commands.options import load_options
from maskrt.errors import MaskrtError
from maskrt.options import LoadOptions


@pytest.mark.parametrize("field,value,message", [
    ("backend", "cuda", "unknown backend 'cuda'; choose from auto, torch, openvino, tensorrt"),
    ("precision", "int4", "unknown precision 'int4'"),
    ("score_threshold", math.nan, "score_threshold must be a number in [0, 1], got nan"),
    ("score_threshold", 2.0, "score_threshold must be a number in [0, 1]"),
    ("score_threshold", -3, "score_threshold must be a number in [0, 1]"),
    ("nms_threshold", math.inf, "nms_threshold must be a number in [0, 1]"),
    ("max_detections", 0, "max_detections must be a positive integer, got 0"),
    ("batch_size", 1.5, "batch_size must be a positive integer"),
    ("num_threads", True, "num_threads must be a positive integer"),
    ("min_size", -1, "min_size must be a positive integer"),
    ("calibration_size", 8, "--calibration and --calibration-size apply to --precision int8 only"),
    ("calibration_size", 0, "--calibration-size must be at least 1, got 0"),
    ("device", "", "device must be a torch device name"),
    ("config", "", "config must be the path of a detectron2 YAML config, got ''"),
])
def test_each_bad_option_is_one_line(field, value, message):
    with pytest.raises(MaskrtError, match="^" + message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        LoadOptions(**{field: value}).checked()


def test_load_refuses_bad_options_and_paths_in_one_line():
    import maskrt

    with pytest.raises(MaskrtError, match="score_threshold must be a number in"):
        maskrt.load("whatever.pth", score_threshold=math.nan)
    with pytest.raises(MaskrtError, match="load\\(\\) wants an engine folder"):
        maskrt.load(None)


def subparser_choices(command: str) -> dict[str, tuple]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest: tuple(a.choices) for a in sub._actions if a.choices}


def test_cli_choice_lists_are_the_options_tuples():
    assert subparser_choices("run")["backend"] == options.BACKENDS
    assert subparser_choices("run")["precision"] == options.PRECISIONS
    assert subparser_choices("build")["target"] == options.TARGETS
    assert subparser_choices("build")["precision"] == options.PRECISIONS
    assert subparser_choices("batch")["backend"] == options.ENGINE_BACKENDS
    assert subparser_choices("eval")["precision"] == options.PRECISIONS
    assert subparser_choices("serve")["backend"] == options.BACKENDS


def test_run_batch_and_serve_arguments_map_to_the_same_load_options():
    parser = build_parser()
    run = parser.parse_args(["run", "v.mp4", "--model", "m", "--json", "o.jsonl", "--threads", "2", "--batch", "3",
                             "--score-threshold", "0.4", "--min-size", "320"])
    batch = parser.parse_args(["batch", "v.mp4", "--model", "m", "--out-dir", "o", "--threads", "2", "--batch", "3",
                               "--score-threshold", "0.4", "--min-size", "320"])
    expected = LoadOptions(num_threads=2, batch_size=3, score_threshold=0.4, min_size=320)
    assert load_options(run) == expected and load_options(batch) == expected
    serve = parser.parse_args(["serve", "--model", "m", "--score-threshold", "0.4", "--min-size", "320"])
    assert load_options(serve, num_threads=2) == LoadOptions(num_threads=2, score_threshold=0.4, min_size=320)


def test_config_is_a_load_option_of_every_command():
    """--config (a detectron2 checkpoint's YAML) reaches LoadOptions from run, batch, serve and eval,
    and build's argument."""
    parser = build_parser()
    for argv in (["run", "v.mp4", "--model", "m.pkl", "--json", "o.jsonl"], ["batch", "v.mp4", "--model", "m.pkl",
                 "--out-dir", "o"], ["serve", "--model", "m.pkl"], ["eval", "--model", "m.pkl", "--coco", "c.json",
                                                                     "--images", "i"]):
        assert load_options(parser.parse_args([*argv, "--config", "m.yaml"])).config == "m.yaml", argv
    assert parser.parse_args(["build", "m.pkl", "-o", "e", "--config", "m.yaml"]).config == "m.yaml"


@pytest.mark.parametrize("value", [math.nan, 2.0, -3, "0.5"])
def test_stream_min_score_is_validated(tmp_path, value):
    """Item 10 of issue 22: the report filter of Segmenter.stream / Pipeline (what run, batch and
    the serve streams report) refused a NaN nowhere and reported nothing."""
    import numpy as np
    from PIL import Image

    from maskrt.engine.stream.api import Stream

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    segmenter = type("Stub", (), {"batch_size": 1})()
    with pytest.raises(MaskrtError, match=r"^min_score must be a number in \[0, 1\]"):
        Stream(segmenter, str(tmp_path / "a.png"), min_score=value)
