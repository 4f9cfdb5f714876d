"""Shared fixtures: seeded checkpoints built with torchvision's own constructors (the oracle)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from maskrt.testing import small_torchvision_maskrcnn  # noqa: F401 - re-exported for the tests

IN_XDIST_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # one of make test's pytest-xdist workers
# torch's intra-op threads: the machine's two cores, or one in each of make test's two xdist workers
# (two workers of two spinning OpenMP threads each made torch's eager tests ~3x slower).
_DEFAULT_THREADS = "1" if IN_XDIST_WORKER else "2"
torch.set_num_threads(int(os.environ.get("MASKRT_TEST_THREADS", _DEFAULT_THREADS)))


def _children_get_default_signals() -> None:
    """A test run started with SIGINT or SIGHUP ignored (`nohup make test &`, a runner without job
    control) would pass that on to every process the tests start, and the tests that signal maskrt's
    CLI would see it ignore them (as it should: a command started with a signal ignored keeps it so).
    A no-op handler here keeps this process as immune as before, while exec resets a caught signal
    to its default in each child."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, lambda *_: None)


_children_get_default_signals()


# make test runs two pytest-xdist workers (--dist loadscope): a module's tests run in one worker, so
# its module fixtures are made once; these folders' session fixtures (a Ray cluster and `maskrt serve`;
# batch's engine, archive and reference outputs; the TensorRT-target engines) are too costly to make
# twice, so each folder runs whole in one worker. (xdist's loadgroup marks do not work with pytest 9:
# xdist 3.8 renames items through `_nodeid`, which pytest 9 no longer reads.)
WHOLE_FOLDERS = ("tests/serve/", "tests/distributed/", "tests/tensorrt/")
FIRST_FOLDER = "tests/serve/"  # the longest scope (~1.5-2 min) is handed out first, not last


def scope_of(nodeid: str) -> str:
    """xdist's unit of work for a test: its folder when in WHOLE_FOLDERS, else its module."""
    module = nodeid.split("::")[0]
    return next((folder for folder in WHOLE_FOLDERS if module.startswith(folder)), module)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return FolderScopes(config, log)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST_FOLDER))  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory):
    """Engines built from checkpoints on first use are cached in a per-run folder, not ~/.cache;
    pytest-xdist's workers share it (maskrt.api.cached_cpu_engine: a process needing an engine
    another is building waits for it)."""
    base = tmp_path_factory.getbasetemp()
    path = base.parent / "engine_cache" if IN_XDIST_WORKER else base / "engine_cache"
    path.mkdir(exist_ok=True)
    os.environ["MASKRT_CACHE_DIR"] = str(path)
    return path

SMALL_CLASSES = ["circle", "square", "triangle", "star"]


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> str:
    """Path of a seeded small model saved as safetensors with class names and a 320/512 input policy."""
    from maskrt.model import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    model = small_torchvision_maskrcnn()
    save_checkpoint(path, model.state_dict(), classes=SMALL_CLASSES, min_size=320, max_size=512)
    return str(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 RGB test image: smooth blobs over noise, so features are not pure noise."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = rng.integers(0, 60, size=(height, width, 3)).astype(np.float32)
    for _ in range(4):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.4) * max(height, width)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[blob] += rng.uniform(60, 190, size=3)
    return img.clip(0, 255).astype(np.uint8)


def cached_engine_dir(checkpoint: str):
    """The CPU engine maskrt.load builds and caches for `checkpoint` (once per session)."""
    import maskrt

    return maskrt.load(checkpoint).backend.engine_dir
