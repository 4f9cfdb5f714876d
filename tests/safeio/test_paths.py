"""maskrt.safeio.paths: temporary names (unique, hidden, beside the target, under 255 bytes,
naming their writer) and one-line refusals of paths that cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskrt import safeio
from maskrt.errors import OutputError
from maskrt.safeio import paths as safeio_paths


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=240)
       .filter(lambda s: s not in (".", "..") and len(s.encode()) <= 240))
def test_temporary_names_are_unique_hidden_and_beside_the_target(name):
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"maskrt-names-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    target = folder / name
    temps = [safeio.new_temp(target) for _ in range(8)]
    try:
        assert len(set(temps)) == 8
        for t in temps:
            assert t.parent == folder and t.name.startswith(".") and t.name.endswith(".partial")
            m = safeio_paths._TEMP_RE.match(t.name)
            assert m and m["name"] == safeio_paths._short(name) and name.startswith(m["name"])
            assert int(m["pid"]) == os.getpid() and m["host"] == safeio_paths._HOST and len(os.fsencode(t.name)) <= 255
    finally:
        for t in temps:
            t.unlink()
        folder.rmdir()


def test_parent_that_is_a_file_or_unwritable_place_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad, message in ((tmp_path / "file" / "o.jsonl", "is a file|a folder in the path is a file"),
                         (Path("/proc/maskrt-test/o.jsonl"), "cannot"),  # /proc takes no new files, even as root
                         (Path("/proc/maskrt-test.jsonl"), "cannot write")):
        with pytest.raises(OutputError, match=message) as info:
            safeio.Output(bad, "--json")
        assert "\n" not in str(info.value)
    assert _listing(tmp_path) == ["file"]
