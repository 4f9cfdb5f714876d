"""The layout rules of docs/ARCHITECTURE.md hold on the source tree (tools/check_layout.py), and the
checker itself finds a circle, an upward import and a misplaced tensorrt / COCOeval import."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_layout", ROOT / "tools" / "check_layout.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layout"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_maskrt_and_benchmarks_follow_the_layout(check):
    assert check.violations(ROOT) == []


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_each_kind_of_violation(check, tmp_path):
    write(tmp_path, {
        "maskrt/__init__.py": "", "benchmarks/__init__.py": "",
        "maskrt/engine/__init__.py": "", "maskrt/model/__init__.py": "", "maskrt/kernels/__init__.py": "",
        "maskrt/engine/a.py": "from . import b\n",
        "maskrt/engine/b.py": "def f():\n    from .a import g\n",  # a lazy import closes the circle too
        "maskrt/kernels/up.py": "from ..engine import a\n",  # kernels (layer 1) -> engine (layer 5)
        "maskrt/model/trt.py": "import tensorrt as trt\n",
        "maskrt/model/coco.py": "from pycocotools.cocoeval import COCOeval\n",
        "maskrt/model/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..engine import a\n",
    })
    found = check.violations(tmp_path)
    assert "import circle: maskrt.engine.a -> maskrt.engine.b" in found
    assert any(p.startswith("maskrt.kernels.up (layer 1, maskrt.kernels) imports maskrt.engine.a") for p in found)
    assert "maskrt.model.trt imports tensorrt: only maskrt.tensorrt may" in found
    assert "maskrt.model.coco imports COCOeval: only maskrt.evaluation.coco_eval may" in found
    assert not any("maskrt.model.typed" in p for p in found)  # type-checking imports are not dependencies
    assert len(found) == 4


def test_every_module_has_a_layer(check):
    graph = check.build_graph(ROOT, ("maskrt",))
    for module in graph.modules:
        check.layer_of(module)  # raises for a package missing from LAYERS


def test_the_tensorrt_target_lists_its_files_in_one_place():
    package = ROOT / "maskrt" / "tensorrt"
    files = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    listed = (package / "__init__.py").read_text()
    guide = (package / "TENSORRT.md").read_text()
    for name in files:
        assert re.search(rf"^- {re.escape(name)}\s", listed, re.M), f"{name} missing from maskrt/tensorrt/__init__.py"
        assert f"tensorrt/{name}" in guide, f"{name} missing from TENSORRT.md"


def test_folders_with_shared_fixtures_run_whole_in_one_xdist_worker():
    """make test's two xdist workers each make the session and package fixtures of the tests they
    run: a folder whose conftest makes such fixtures (a Ray cluster, `maskrt serve`, engines) runs
    whole in one worker (tests/conftest.py, WHOLE_FOLDERS), or they would be made twice."""
    from tests.conftest import WHOLE_FOLDERS, scope_of

    shared = {str(path.parent.relative_to(ROOT)) + "/" for path in (ROOT / "tests").rglob("conftest.py")
              if re.search(r'scope="(session|package)"', path.read_text()) and path.parent != ROOT / "tests"}
    assert shared and shared <= set(WHOLE_FOLDERS)
    for folder in WHOLE_FOLDERS:
        assert scope_of(f"{folder}test_a.py::test_x") == scope_of(f"{folder}sub/test_b.py::test_y[1]") == folder
    assert scope_of("tests/kernels/test_nms.py::test_x[a::b]") == "tests/kernels/test_nms.py"
    assert scope_of("tests/kernels/test_nms.py::test_x") != scope_of("tests/kernels/test_paste.py::test_x")
