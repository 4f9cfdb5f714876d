"""SIGTERM (and SIGHUP) handled like Ctrl-C, so that every cleanup path (temporary files, engine folders
under construction, locks) runs before the process ends.

The CLI installs `raise_terminated` for the whole command (main(), cli_handlers); library code that makes
temporary files for a long time (build_engine) uses `cleanup_on_sigterm()`, which does the same
only while SIGTERM still has its default action and then ends the process by the signal, as it
would have ended without maskrt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised like KeyboardInterrupt so that the same cleanup runs."""


def raise_terminated(signum, frame) -> None:
    raise Terminated(signal.Signals(signum).name)


TERMINATING = (signal.SIGTERM, signal.SIGHUP)  # handled like Ctrl-C by every command


@contextlib.contextmanager
def cli_handlers():
    """For a CLI command: inside, SIGTERM and SIGHUP (the terminal closed) raise Terminated (a
    KeyboardInterrupt); the previous handlers are restored after (main() may be called
    in-process, by tests or other tools)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, raise_terminated) for sig in TERMINATING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _resend(signum: int) -> None:
    """Deliver `signum` again, with its default action (a seam for tests)."""
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def cleanup_on_sigterm():
    """Inside: SIGTERM raises Terminated (when this is the main thread and SIGTERM has its default
    action; otherwise nothing changes). Leaving with Terminated re-sends SIGTERM with the default
    action restored, after the cleanup of the code inside has run."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _resend(signal.SIGTERM)
        raise
    finally:
        if signal.getsignal(signal.SIGTERM) is raise_terminated:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
