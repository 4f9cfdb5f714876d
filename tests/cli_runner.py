"""`maskrt ARGS` run in this process: maskrt.cli.main with stdout and stderr captured.

The same entry point as the console script (argparse, the one-line error handler, exit codes)
without a new interpreter importing torch for each call (~6 s on a 2-core machine). Tests of
what only a separate process shows (signals, interpreter exit, the console script itself) keep
using subprocesses."""

from __future__ import annotations

import contextlib
import io
import subprocess


def run_in_process(*args: str) -> subprocess.CompletedProcess:
    """CompletedProcess(args, returncode, stdout, stderr) of `maskrt *args`, like subprocess.run's."""
    from maskrt.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return subprocess.CompletedProcess(["maskrt", *args], code, out.getvalue(), err.getvalue())
