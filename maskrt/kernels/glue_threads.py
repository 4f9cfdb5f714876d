"""A small pool of threads for the CPU glue's independent pieces of work.

The glue between the compiled stages (RoIAlign's channel blocks, the paste's per-instance crops)
is numpy, numba and single-threaded torch work that releases the GIL. While one engine call is in
its glue the stages are idle, so a second thread uses the core OpenVINO's threads have just left.
torch's own intra-op pool is held at one thread meanwhile (single_threaded_torch): its OpenMP
workers spin after each region and take the core OpenVINO, or the other glue thread, needs;
these threads block instead (concurrent.futures).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

WORKERS = min(2, os.cpu_count() or 1)  # threads the glue may use at once (this machine's cores, at most 2)
_THREAD_PREFIX = "maskrt.glue"
# A caller's thread budget for the glue inside it (thread-local through contextvars; see limited_to).
_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("maskrt_glue_workers", default=None)


@contextlib.contextmanager
def limited_to(workers: int):
    """Within the block, in this thread, map_balanced uses at most `workers` threads (1: the calling
    thread only). An engine call sets its share of the cores: the OpenVINO backend passes
    num_threads // requests, so an engine loaded on one thread, or two frames in flight on two
    cores, never puts a second glue thread beside its stages."""
    token = _BUDGET.set(max(1, int(workers)))
    try:
        yield
    finally:
        _BUDGET.reset(token)


@functools.cache
def _executor(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """The glue's threads, one pool for the process (like torch's own pool; named "maskrt.glue_N",
    apart from a stream's "maskrt-*" pipeline threads, which stop with their stream). Each sets
    its own OpenMP thread count to 1 when it starts (always under single_threaded_torch, so
    torch's process-wide count is 1 already): torch fixes a thread's OpenMP count at its first
    parallel op, so a later torch.set_num_threads elsewhere never reaches these threads, and two
    glue threads each opening a 2-thread region would fight."""
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=_THREAD_PREFIX,
                                                 initializer=torch.set_num_threads, initargs=(1,))


# A forked child has the cached pool but none of its threads: work handed to it would wait forever.
os.register_at_fork(after_in_child=_executor.cache_clear)


def map_balanced(work: Callable[[T], R], items: Iterable[T], costs: Iterable[float] | None = None,
                 workers: int | None = None, min_cost: float = 0.0) -> list[R]:
    """[work(item) for item in items], results in the items' order, computed on up to `workers`
    threads (default WORKERS; fewer inside `limited_to`): the items are dealt into one group per
    thread, largest cost first to the least loaded group (equal costs when none are given), and
    each group is one task.
    Each call runs in the caller's grad / inference mode (thread-local in torch). With one worker,
    one item, or costs summing to less than `min_cost` (a hand-off to the threads costs ~0.08 ms)
    everything runs in the calling thread, and so does work mapped from inside a glue task (it
    would otherwise wait for the threads it occupies). The first exception propagates."""
    items = list(items)
    costs = list(costs) if costs is not None else [1.0] * len(items)
    workers = available() if workers is None else min(workers, available())
    if workers < 2 or len(items) < 2 or sum(costs) < min_cost:
        return [work(item) for item in items]
    groups = _deal(costs, workers)
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def run_group(indices: list[int]) -> list[tuple[int, R]]:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return [(i, work(items[i])) for i in indices]

    results: list = [None] * len(items)
    with single_threaded_torch():  # each task's torch ops on its own thread, not on torch's pool too
        for done in _executor(workers).map(run_group, groups):
            for i, result in done:
                results[i] = result
    return results


def available() -> int:
    """The threads map_balanced may use from here: WORKERS within the caller's budget (limited_to);
    1 on a glue thread (work mapped from inside a task runs on that task's thread)."""
    if _on_a_glue_thread():
        return 1
    budget = _BUDGET.get()
    return WORKERS if budget is None else min(WORKERS, budget)


def _on_a_glue_thread() -> bool:
    return threading.current_thread().name.startswith(_THREAD_PREFIX)


def _deal(costs: list[float], groups: int) -> list[list[int]]:
    """Item indices dealt into at most `groups` non-empty groups: each item, largest cost first,
    to the group with the smallest total so far (ties: the first)."""
    loads = [0.0] * min(groups, len(costs))
    dealt: list[list[int]] = [[] for _ in loads]
    for i in sorted(range(len(costs)), key=lambda k: -costs[k]):
        g = loads.index(min(loads))
        dealt[g].append(i)
        loads[g] += costs[i]
    return dealt


_TORCH_THREADS = {"users": 0, "saved": None}
_TORCH_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def single_threaded_torch():
    """torch's intra-op pool at 1 thread while any user is inside (an OpenVINO inference, the
    glue's threads; restored when the last one leaves; torch.set_num_threads is process-wide).
    The glue's torch ops (RoIAlign's gathers, top-k, preprocessing) are small; on 2 cores a
    second torch thread only waits in each parallel region and spins after it, taking the core
    OpenVINO's threads need: one engine call of the bundled int8 engine measured 49-58 ms with
    one torch thread, 84-92 ms with two (load average 3)."""
    with _TORCH_THREADS_LOCK:
        if _TORCH_THREADS["users"] == 0:
            _TORCH_THREADS["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _TORCH_THREADS["users"] += 1
    try:
        yield
    finally:
        with _TORCH_THREADS_LOCK:
            _TORCH_THREADS["users"] -= 1
            if _TORCH_THREADS["users"] == 0:
                torch.set_num_threads(_TORCH_THREADS["saved"])
