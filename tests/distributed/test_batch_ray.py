"""`maskrt batch --ray` on a simulated cluster (ray.cluster_utils.Cluster): a head without CPUs
for the driver and two worker nodes of 2 logical CPUs, 80 MB object store each, one module-wide.

Faithful here: scheduling, actor restarts, task retries, node loss. Not here: network
partitions, transfer cost, separate disks (the nodes share this file system, so the outputs
are checked, not where they were read from). The oracle is `maskrt run` on the same input and
engine (conftest.reference); every test is bounded by a timeout, and every wait in it too.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
from ray.cluster_utils import Cluster

from maskrt.options import LoadOptions
from maskrt.cli import main
from maskrt.distributed import BatchOptions, run_batch
from maskrt.distributed.ray_pool import NAMESPACE
from maskrt.distributed.state import FAULT_ENV
from tests.distributed.conftest import (SCORE, assert_exactly_once, assert_matches_reference, name_of, read_summary,
                                        record)

MB = 1 << 20
pytestmark = [pytest.mark.timeout(420), pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")]
VIDEOS = ["v0", "v1", "v2", "v3", "v4", "v5"]


@pytest.fixture(scope="module")
def cluster():
    """Node deaths are noticed within ~5 s (health checks every second, 5 misses), not 15+."""
    config = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
              "health_check_failure_threshold": 5, "health_check_timeout_ms": 1000}
    head = {"num_cpus": 0, "object_store_memory": 80 * MB, "include_dashboard": False, "_system_config": config}
    c = Cluster()
    started(lambda: c.add_node(**head))
    nodes = [started(lambda: c.add_node(num_cpus=2, object_store_memory=80 * MB)) for _ in range(2)]
    c.wait_for_nodes(timeout=120)
    ray.init(address=c.address, namespace=NAMESPACE, log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def started(add, tries: int = 3):
    """Ray gives a node 30 s to register: on a machine loaded by other jobs, try again."""
    for attempt in range(tries):
        try:
            return add()
        except Exception:  # noqa: BLE001 - "The current node timed out during startup"
            if attempt == tries - 1:
                raise


def options(engine, out, paths, **kw) -> BatchOptions:
    return BatchOptions(sources=[str(p) for p in paths], model=str(engine), out_dir=out, ray="", workers=2,
                        load=LoadOptions(num_threads=1, score_threshold=float(SCORE)), quiet=True, **kw)


def workers() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "-worker-" in a["name"]]


def frames_done() -> int:
    """The running job's frame count, from its progress actor (0 before it exists)."""
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a["name"].endswith("-progress"):
            try:
                return ray.get(ray.get_actor(a["name"], namespace=NAMESPACE).total.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - the job just ended
                return 0
    return 0


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def in_thread(fn, *args):
    """Run fn in a thread; returns (thread, result list, error list)."""
    result, error = [], []

    def target():
        try:
            result.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result, error


def test_cluster_outputs_match_maskrt_run_and_a_rerun_skips_them(cluster, small_engine, archive, reference, tmp_path):
    paths = [archive[k] for k in ("v0", "v1", "imgs")]  # two clip.mp4 in different folders, 5 images in 3 tasks
    out = tmp_path / "out"
    summary = run_batch(options(small_engine, out, paths, coco=True, images_per_task=2))
    assert (summary.count("done"), summary.count("failed"), summary.reexecutions, summary.workers) == (3, 0, 0, 2)
    assert summary.mode == "ray" and summary.frames == 4 + 4 + 5
    assert_exactly_once(out, paths)
    assert_matches_reference(out, archive, reference, ["v0", "v1", "imgs"])
    nodes = {record(out, p)["node"] for p in paths}
    assert nodes <= {n.node_id for n in cluster[1]}  # written on the worker nodes, never the head
    again = run_batch(options(small_engine, out, paths, coco=True, images_per_task=2))
    assert (again.count("skipped"), again.frames, again.workers) == (3, 0, 0)  # no worker even started
    assert_exactly_once(out, paths)


@pytest.mark.slow
def test_workers_killed_at_any_point(cluster, small_engine, archive, reference, tmp_path, monkeypatch):
    """v0's worker dies right after its first output was renamed, v1's after its completion
    record was written (before the task returned), v2's as it starts; meanwhile one worker is
    killed at a random moment (ray.kill, restart allowed). Ray restarts the actors and retries."""
    fired = tmp_path / "fired"
    fired.mkdir()
    keys = {k: name_of(archive[k]) for k in VIDEOS}
    monkeypatch.setenv(FAULT_ENV, f"after-rename:{keys['v0']},after-record:{keys['v1']},start:{keys['v2']}@{fired}")
    out = tmp_path / "out"
    paths = [archive[k] for k in VIDEOS]
    thread, result, error = in_thread(run_batch, options(small_engine, out, paths, max_attempts=6))
    wait_for(lambda: frames_done() > 0 or not thread.is_alive(), 300, "the first frames")
    time.sleep(random.Random(14).uniform(0.0, 3.0))
    if thread.is_alive() and workers():
        ray.kill(ray.get_actor(random.Random(1).choice(workers()), namespace=NAMESPACE), no_restart=False)
    thread.join(timeout=360)
    assert not thread.is_alive() and not error, error
    [summary] = result
    crashed = {p.name: int(p.read_text()) for p in fired.iterdir()}  # marker -> pid of the process that died
    assert sorted(crashed) == sorted([f"{keys['v0']}.after-rename", f"{keys['v1']}.after-record", f"{keys['v2']}.start"])
    assert (summary.count("done"), summary.count("failed")) == (6, 0)
    assert summary.reexecutions >= 3  # one per injected crash, more when the random kill hit a unit
    assert_exactly_once(out, paths, coco=False)
    assert_matches_reference(out, archive, reference, VIDEOS, coco=False)
    # v1's record is the one the crashed process wrote (the retry found it and wrote nothing);
    # v0's outputs were completed by the retry, in a new process
    assert record(out, archive["v1"])["pid"] == crashed[f"{keys['v1']}.after-record"]
    assert record(out, archive["v0"])["pid"] != crashed[f"{keys['v0']}.after-rename"]


@pytest.mark.slow
def test_driver_killed_then_rerun_finishes_the_rest(cluster, small_engine, archive, reference, tmp_path):
    """The CLI as a driver process joined to the cluster, SIGKILLed once two inputs are finished;
    the same command again finishes the others and leaves the finished ones untouched."""
    out = tmp_path / "out"
    paths = [archive[k] for k in VIDEOS]
    command = [sys.executable, "-m", "maskrt.cli", "batch", *map(str, paths), "--model", str(small_engine),
               "--out-dir", str(out), f"--ray={cluster[0].address}", "--workers", "2", "--threads", "1",
               "--score-threshold", SCORE, "--no-video", "--quiet"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(list(out.glob("*.done.json"))) >= 2 or driver.poll() is not None, 300, "two inputs")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()[-2000:]
    wait_for(lambda: not workers(), 60, "Ray to stop the dead driver's workers")
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.done.json")}
    assert 2 <= len(finished) < len(paths)
    assert main(command[3:] + ["--summary", str(tmp_path / "s.json")]) == 0  # the same command, again
    summary = read_summary(tmp_path / "s.json")
    skipped = {f"{r['name']}.done.json" for r in summary["results"] if r["status"] == "skipped"}
    assert skipped == set(finished)
    assert summary["done"] == len(paths) - len(finished) and summary["frames"] == 4 * summary["done"]
    assert {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in ((n, out / n) for n in finished)} == finished
    assert_exactly_once(out, paths, video=False, coco=False)
    assert_matches_reference(out, archive, reference, VIDEOS, video=False, coco=False)


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_node_removed_mid_job(cluster, small_engine, archive, reference, tmp_path, monkeypatch):
    """One worker node is killed ungracefully while both workers are busy; its actor is started
    again on the other node and the unit it was running is retried. (Last: the node is gone.)
    Every unit holds at its start (fault point "hold") until released, so both nodes are
    certainly busy when one is removed, however fast the machine."""
    c, nodes = cluster
    held = tmp_path / "held"
    held.mkdir()
    monkeypatch.setenv(FAULT_ENV, f"hold@{held}")
    out = tmp_path / "out"
    paths = [archive[k] for k in VIDEOS]
    thread, result, error = in_thread(run_batch, options(small_engine, out, paths, video=True))

    def both_nodes_hold():  # each worker node is in the middle of a unit
        holding = {json.loads(p.read_text() or "{}").get("node") for p in held.glob("*.hold")}
        return {n.node_id for n in nodes} <= holding or not thread.is_alive()

    wait_for(both_nodes_hold, 300, "a unit held on each worker node")
    victim = nodes[1]
    holds = [json.loads(p.read_text()) for p in held.glob("*.hold")]
    victim_pids = [h["pid"] for h in holds if h["node"] == victim.node_id]
    c.remove_node(victim, allow_graceful=False)
    # Released only once the lost node's worker has exited: an orphaned worker still running could
    # finish its unit and answer the driver directly (actor results do not pass through the raylet).
    wait_for(lambda: not any(alive(pid) for pid in victim_pids), 120, "the lost node's worker to exit")
    (held / "release").touch()
    thread.join(timeout=360)
    assert not thread.is_alive() and not error, error
    [summary] = result
    assert (summary.count("done"), summary.count("failed")) == (6, 0)
    assert summary.reexecutions >= 1  # the unit that was running on the lost node ran again
    written_on = {record(out, p)["node"] for p in paths}
    assert nodes[0].node_id in written_on
    assert_exactly_once(out, paths, coco=False)
    assert_matches_reference(out, archive, reference, VIDEOS, coco=False)
