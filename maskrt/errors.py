"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class MaskrtError(Exception):
    """Base class: a user-facing problem, reported as one line without a traceback."""


class CheckpointError(MaskrtError):
    """A checkpoint that is missing, unreadable, unsafe, or not a Mask R-CNN we can build."""


class InputError(MaskrtError):
    """An image or video input that cannot be used."""


class EngineError(MaskrtError):
    """An engine artifact that is missing, corrupt, or cannot run on this machine."""


class OutputError(MaskrtError):
    """An output path that cannot be written safely (a folder, a device, an input, locked, full)."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type's name when it has none: the
    detail a one-line error quotes from a library's exception (pugixml, safetensors, YAML, JSON)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
