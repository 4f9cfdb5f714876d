"""What `maskrt batch` works on: SOURCE arguments expanded into inputs with fixed output names.

A SOURCE is a video file, an image file, a folder of images, a quoted glob, or a text file
(`.txt`) listing any of these, one per line (blank lines and `#` comments skipped; relative
lines are relative to the list file's folder). A glob's matches are each a video, each a folder,
and its image files together one image set (as `maskrt run 'imgs/*.jpg'` reads them).

Every input gets a fixed output name, `<stem>-<12 hex digits of the sha256 of its absolute
path>`: the same on every run of the command whatever other inputs are given, and distinct for
`a/clip.mp4` and `b/clip.mp4`. Expansion only lists and stats files; nothing is decoded here.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.images import IMAGE_SUFFIXES
from ..engine.sources import has_glob, image_paths
from ..errors import InputError

LIST_SUFFIXES = (".txt",)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Input:
    """One unit of output. kind: "video" or "images". spec: the SOURCE as given (or listed);
    path: its absolute form (file, folder or glob); name: the output base name; images: for
    image sets, (name as `maskrt run SPEC` writes it in JSON lines, absolute path) in order."""

    kind: str
    spec: str
    path: str
    name: str
    images: tuple[tuple[str, str], ...] = ()


@dataclass
class Expansion:
    """inputs: in the order given (duplicates dropped); missing: (spec, one-line reason) for
    sources that name nothing usable."""

    inputs: list[Input] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)


def output_name(kind: str, absolute: str) -> str:
    """`<stem>-<hash12>` for an input's absolute path: stem is the file's stem, a folder's name,
    or a glob's folder name, made safe for file names (at most 60 characters)."""
    path = Path(absolute)
    if kind == "video":
        stem = path.stem
    elif has_glob(absolute) and not path.exists():
        stem = next((p for p in reversed(path.parts) if not has_glob(p)), "images")
    else:
        stem = path.stem if path.is_file() else path.name
    stem = _UNSAFE.sub("_", stem).strip("._")[:60] or "input"
    return f"{stem}-{hashlib.sha256(absolute.encode('utf-8')).hexdigest()[:12]}"


def expand_sources(sources: list[str], out_dir: Path) -> Expansion:
    """Expand SOURCE arguments (see the module docstring). Inputs inside `out_dir` that came
    from a glob or a list are left out (earlier outputs); named explicitly, they are `missing`."""
    result, seen = Expansion(), set()
    out_dir = Path(os.path.abspath(out_dir))
    for spec in sources:
        _expand(str(spec), result, seen, out_dir, explicit=True, lists=set())
    names = {}
    for item in result.inputs:
        if item.name in names:  # 48-bit hash collision of two different paths: refuse to guess
            raise InputError(f"inputs {names[item.name]} and {item.path} map to one output name {item.name}")
        names[item.name] = item.path
    return result


def _inside(path: str, folder: Path) -> bool:
    return Path(path) == folder or folder in Path(path).parents


def _add(result: Expansion, seen: set, item: Input, out_dir: Path, explicit: bool) -> None:
    if _inside(item.path, out_dir) or any(_inside(p, out_dir) for _, p in item.images):
        if explicit:
            result.missing.append((item.spec, f"{item.spec} is inside --out-dir {out_dir}"))
        return
    if item.path not in seen:
        seen.add(item.path)
        result.inputs.append(item)


def _images_input(spec: str, absolute: str, explicit: bool, result: Expansion) -> Input | None:
    try:
        paths = image_paths(spec)
    except InputError as exc:
        if explicit:
            result.missing.append((spec, str(exc)))
        return None
    images = tuple((str(p), os.path.abspath(p)) for p in paths)
    return Input("images", spec, absolute, output_name("images", absolute), images)


def _expand(spec: str, result: Expansion, seen: set, out_dir: Path, explicit: bool, lists: set) -> None:
    path = Path(spec)
    absolute = os.path.abspath(spec)
    if has_glob(spec) and not path.exists():
        _expand_glob(spec, result, seen, out_dir, lists)
    elif path.is_dir():
        item = _images_input(spec, absolute, explicit, result)
        if item is not None:
            _add(result, seen, item, out_dir, explicit)
    elif not path.exists():
        result.missing.append((spec, f"input not found: {spec}"))
    elif not path.is_file():  # read to its end, hashed and recorded: only a regular file can be
        result.missing.append((spec, f"{spec} is {_file_kind(path)}, not a file: it cannot be an input"))
    elif path.suffix.lower() in LIST_SUFFIXES:
        _expand_list(path, result, seen, out_dir, lists)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        _add(result, seen, Input("images", spec, absolute, output_name("images", absolute),
                                 ((spec, absolute),)), out_dir, explicit)
    else:
        _add(result, seen, Input("video", spec, absolute, output_name("video", absolute)), out_dir, explicit)


def _expand_glob(spec: str, result: Expansion, seen: set, out_dir: Path, lists: set) -> None:
    matches = sorted(glob.glob(spec, recursive=True))
    if not matches:
        result.missing.append((spec, f"no files match {spec}"))
        return
    has_images = False
    for match in matches:
        if Path(match).is_file() and Path(match).suffix.lower() in IMAGE_SUFFIXES:
            has_images = True
        else:
            _expand(match, result, seen, out_dir, explicit=False, lists=lists)
    if has_images:
        item = _images_input(spec, os.path.abspath(spec), False, result)
        if item is not None:
            _add(result, seen, item, out_dir, explicit=False)


def _expand_list(path: Path, result: Expansion, seen: set, out_dir: Path, lists: set) -> None:
    key = os.path.realpath(path)
    if key in lists:  # a list that includes itself, directly or not
        return
    lists.add(key)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        result.missing.append((str(path), f"cannot read list {path}: {exc}"))
        return
    named = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = line if os.path.isabs(line) else os.path.join(path.parent, line)
        named = named or os.path.realpath(entry) not in lists
        _expand(entry, result, seen, out_dir, explicit=True, lists=lists)
    if not named:
        result.missing.append((str(path), f"list {path} names no input (only itself, lists already read, "
                                          "blank lines or comments)"))


def _file_kind(path: Path) -> str:
    """What a path that exists but is neither a folder nor a regular file is, as a phrase."""
    mode = path.stat().st_mode
    for test, what in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"
