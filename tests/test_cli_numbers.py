"""Every numeric option of every command, table-driven from the parser itself: each is an
`options.Number` (a range), its bounds parse, and every value outside the range (below, above,
NaN, infinities, not a number, a fraction for an integer) is one line `maskrt: error: --FLAG must
be ...`, exit code 2, before any work (issue 22, item 7: `serve --port 70000`, `--max-upload-mb
nan`, `--replica-cpus inf` were tracebacks; item 10: `run --score-threshold nan` ran with no
detections)."""

from __future__ import annotations

import argparse

import pytest

from maskrt.cli import build_parser
from maskrt.options import Number
from tests.cli_runner import run_in_process

# the arguments each command needs besides the option under test (nothing is run: the value is
# refused while the arguments are parsed)
REQUIRED = {
    "build": ["weights.pth", "-o", "out.maskrt"],
    "run": ["video.mp4", "--model", "m.pth", "--json", "out.jsonl"],
    "batch": ["video.mp4", "--model", "m.pth", "--out-dir", "out"],
    "eval": ["--model", "m.pth", "--coco", "ann.json", "--images", "imgs"],
    "info": ["m.pth"],
    "demo": [],
    "serve": ["--model", "m.pth"],
    "export": ["e.maskrt", "--triton-repo", "repo"],
}


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def numeric_options() -> list[tuple[str, str, Number]]:
    """(command, flag, its Number) for every option whose value is a number."""
    out = []
    for name, sub in commands().items():
        for action in sub._actions:
            if isinstance(action.type, Number):
                out.append((name, action.option_strings[-1], action.type))
    return out


def outside(kind: Number) -> list[str]:
    """Values just outside the range, and what is never a finite number of its kind."""
    values = ["nan", "-nan", "inf", "-inf", "1e400", "x", ""]
    if kind.low is not None:
        values.append(str(kind.kind(kind.low)) if kind.above else str(kind.kind(kind.low) - 1))
    if kind.high is not None:
        values.append(str(kind.high + 1) if kind.kind is int else repr(kind.high * 1.0001))
    if kind.kind is int:
        values += ["1.5", "0x10"]
    return values


def test_every_int_and_float_option_has_a_range():
    loose = [(name, a.option_strings) for name, sub in commands().items() for a in sub._actions
             if a.type in (int, float)]
    assert not loose, f"options parsed with a bare int/float (no range): {loose}"
    assert set(commands()) == set(REQUIRED)
    assert len(numeric_options()) >= 40  # run, batch, eval, build, demo, serve: all of them


@pytest.mark.parametrize("command,flag,kind", numeric_options(), ids=lambda v: v if isinstance(v, str) else "")
def test_out_of_range_is_one_line_exit_2(command, flag, kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in outside(kind):
        result = run_in_process(command, *REQUIRED[command], f"{flag}={value}")
        err = result.stderr
        assert result.returncode == 2, (flag, value, result)
        assert err.startswith(f"maskrt: error: {flag} must be ") and err.count("\n") == 1, (flag, value, err)
        assert repr(value) in err and "Traceback" not in err and result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing started


@pytest.mark.parametrize("command,flag,kind", numeric_options(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_bounds_parse(command, flag, kind):
    parser = build_parser()
    inside = [kind.low + (0.5 if kind.above else 0)] if kind.low is not None else []
    inside += [kind.high] if kind.high is not None else [kind.kind(10**6)]
    for value in inside:
        args = parser.parse_args([command, *REQUIRED[command], f"{flag}={kind.kind(value)}"])
        got = getattr(args, flag.lstrip("-").replace("-", "_"))
        assert got == kind.kind(value) and type(got) is kind.kind


def test_argparse_mistakes_are_one_line_too():
    result = run_in_process("run", "video.mp4", "--model", "m.pth", "--no-such-flag")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("maskrt: error: unrecognized arguments: --no-such-flag (see maskrt --help)")
    result = run_in_process("serve")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--model" in result.stderr
