"""`maskrt serve` refusing what cannot work: one line on stderr, exit 2, before any Ray is started."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from PIL import Image

from maskrt.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def files(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "still.png")
    return tmp_path


@pytest.mark.parametrize("extra, words", [
    (["--stream", "nodelimiter"], "--stream wants NAME=SOURCE"),
    (["--stream", "bad name=0"], "stream name 'bad name'"),
    (["--stream", "cam={dir}/missing.mp4"], "video file not found"),
    (["--stream", "cam={dir}/still.png"], "is an image source"),
    (["--stream", "a=0", "--stream", "a=1"], "same name"),
    (["--replicas", "0"], "--replicas must be an integer from 1 to 1024"),
    (["--max-replicas", "1", "--replicas", "2"], "below --replicas"),
    (["--score-threshold", "1.5"], "--score-threshold must be a number in [0, 1]"),
    (["--model", "{dir}/nope.safetensors"], "nope.safetensors"),
])
def test_refused_in_one_line(small_checkpoint, files, capsys, extra, words):
    import ray

    extra = [e.format(dir=files) for e in extra]
    model = [] if "--model" in extra else ["--model", small_checkpoint]
    assert main(["serve", *model, "--port", str(free_port()), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maskrt: error: ") and words in err and "\n" not in err, err
    assert not ray.is_initialized()


def test_port_in_use(small_checkpoint, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--model", small_checkpoint, "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maskrt: error: cannot listen on 127.0.0.1:") and "\n" not in err, err
