"""A python that sees only some installed distributions (and their requirements): `python -S` (no
site-packages of its own) with PYTHONPATH = a folder of links to those distributions' files, plus
the source tree. How tests run code as it runs elsewhere: the GPU machines' packages only, or a
process without torch."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path


def requirements_closure(names) -> set[str]:
    """The installed distributions `names` need (themselves included), by their metadata."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    return seen


def site_of(folder: Path, distributions) -> Path:
    """A site-packages folder holding only these distributions and their requirements (links to the
    installed files: packages, modules, their .libs and metadata)."""
    site = folder / "site"
    site.mkdir(exist_ok=True)
    for name in requirements_closure(distributions):
        dist = importlib.metadata.distribution(name)
        for top in {Path(f).parts[0] for f in dist.files or ()} - {"..", "__pycache__"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not top.endswith(".pth") and not (site / top).exists():
                (site / top).symlink_to(source)
    assert (site / "torch").exists() or "torch" not in distributions
    assert not any((site / m).exists() for m in ("pytest", "_pytest", "onnx", "openvino", "ray"))
    return site
