"""maskrt.kernels.glue_threads: the glue's independent work on two threads, results in order."""

from __future__ import annotations

import threading

import pytest
import torch

from maskrt.kernels import glue_threads


def test_results_come_back_in_the_items_order_computed_off_the_calling_thread():
    caller = threading.get_ident()
    ran_on = {}

    def work(item):
        ran_on[item] = threading.current_thread().name
        return item * item

    assert glue_threads.map_balanced(work, range(7), costs=[1, 9, 2, 8, 3, 7, 4], workers=2) == \
        [i * i for i in range(7)]
    assert all(name.startswith("maskrt.glue") for name in ran_on.values())
    assert threading.get_ident() == caller


def test_one_worker_one_item_or_little_work_runs_in_the_calling_thread():
    here = threading.current_thread().name
    assert glue_threads.map_balanced(lambda _: threading.current_thread().name, range(3), [1, 2, 3], workers=2,
                                     min_cost=7) == [here] * 3
    assert glue_threads.map_balanced(lambda _: threading.current_thread().name, range(3), [1, 2, 3], workers=2,
                                     min_cost=6) != [here] * 3
    assert glue_threads.map_balanced(lambda _: threading.current_thread().name, range(3), workers=1) == [here] * 3
    assert glue_threads.map_balanced(lambda _: threading.current_thread().name, [0], workers=2) == [here]


def test_a_budget_limits_the_threads_in_its_block_and_thread_only():
    here = threading.current_thread().name

    def where():  # "here" when the items ran on the calling thread, "pool" when on the glue's threads
        names = set(glue_threads.map_balanced(lambda _: threading.current_thread().name, range(2), workers=2))
        return "here" if names == {here} else "pool" if all(n.startswith("maskrt.glue") for n in names) else names

    with glue_threads.limited_to(1):
        assert where() == "here"
        other = []
        elsewhere = threading.Thread(target=lambda: other.append(
            all(n.startswith("maskrt.glue") for n in glue_threads.map_balanced(
                lambda _: threading.current_thread().name, range(2), workers=2))))
        elsewhere.start()
        elsewhere.join()
        assert other == [True]  # another thread has no budget set
        with glue_threads.limited_to(2):
            assert where() == "pool"
        assert where() == "here"
    assert where() == "pool"


def test_items_are_dealt_largest_first_to_the_least_loaded_group():
    # 5 -> g0; 4 -> g1; 3 -> g1 (4 < 5); 2 -> g0 (5 < 7); 1 -> g0 (7 = 7: the first)
    assert glue_threads._deal([5, 4, 3, 2, 1], 2) == [[0, 3, 4], [1, 2]]
    assert glue_threads._deal([1.0], 2) == [[0]]  # never an empty group


def test_work_runs_in_the_callers_inference_mode():
    with torch.inference_mode():
        modes = glue_threads.map_balanced(lambda _: torch.is_inference_mode_enabled(), range(4), workers=2)
        inside = torch.ones(3)
        # an in-place update of an inference tensor is only allowed in inference mode
        glue_threads.map_balanced(lambda i: inside[i:i + 1].mul_(2), range(3), workers=2)
    assert modes == [True] * 4 and inside.tolist() == [2.0] * 3
    assert glue_threads.map_balanced(lambda _: torch.is_inference_mode_enabled(), range(4), workers=2) == [False] * 4


def test_torch_runs_on_one_thread_inside_the_work_and_its_count_is_restored():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        counts = glue_threads.map_balanced(lambda _: torch.get_num_threads(), range(4), workers=2)
        assert counts == [1] * 4
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_work_mapped_from_inside_a_glue_task_runs_there():
    """Each of the two tasks maps more work: handed to the pool it would wait for the threads the
    tasks occupy; it runs on the task's own thread instead."""
    def inner(_):
        return threading.current_thread().name

    def outer(_):
        return set(glue_threads.map_balanced(inner, range(4), workers=2)) == {threading.current_thread().name}

    got = []
    caller = threading.Thread(target=lambda: got.append(glue_threads.map_balanced(outer, range(2), workers=2)),
                              daemon=True)
    caller.start()
    caller.join(timeout=60)  # a deadlock fails here instead of hanging the suite
    assert got == [[True, True]]


def test_the_first_exception_propagates():
    def work(item):
        if item == 3:
            raise ValueError("item 3")
        return item

    with pytest.raises(ValueError, match="item 3"):
        glue_threads.map_balanced(work, range(6), workers=2)


def test_a_forked_child_gets_a_pool_of_its_own():
    """The child of a fork after the pool has run has none of its threads; it must not hand work
    to the parent's (dead) pool and wait forever."""
    import multiprocessing

    both = threading.Barrier(2, timeout=30)  # the pool's two threads exist, and are idle, before the fork
    assert glue_threads.map_balanced(lambda i: both.wait() >= 0, range(2), workers=2) == [True, True]
    child = multiprocessing.get_context("fork").Process(target=_square_four_on_the_pool)
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def _square_four_on_the_pool():
    ok = glue_threads.map_balanced(lambda i: i * i, range(4), workers=2) == [0, 1, 4, 9]
    raise SystemExit(0 if ok else 1)
