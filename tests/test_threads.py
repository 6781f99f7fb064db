"""Blocks of work on threads: results in order, errors surfaced, thread counts checked."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from clvmodels._threads import available_cpus, in_order, resolve_n_jobs


def test_results_come_in_task_order_whichever_finishes_first():
    finished = []

    def task(i: int) -> int:
        time.sleep(0.05 * (5 - i))  # earlier tasks take longer
        finished.append(i)
        return i * i

    tasks = (lambda i=i: task(i) for i in range(6))
    assert list(in_order(tasks, n_jobs=3)) == [0, 1, 4, 9, 16, 25]
    assert finished != sorted(finished)  # they did run at once


def test_no_more_than_n_jobs_run_at_once_and_few_wait_ahead():
    running, peak, started = [0], [0], []
    lock = threading.Lock()

    def task(i: int) -> int:
        with lock:
            started.append(i)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i

    consumed = []
    for value in in_order((lambda i=i: task(i) for i in range(12)), n_jobs=2):
        consumed.append(value)
        # tasks started ahead of what has been consumed: the running ones and one more
        assert len(started) - len(consumed) <= 2
    assert consumed == list(range(12)) and peak[0] == 2


@pytest.mark.parametrize("window", [None, 8])
def test_a_wider_window_keeps_the_threads_busy_past_a_long_task(window):
    # Task 0 lasts until task 6 has started (or a second has passed). With the default
    # window only tasks 1 and 2 are submitted meanwhile; with 8, the second thread goes
    # on to task 6, and no more than the window is started ahead of what is consumed.
    sixth = threading.Event()
    started, consumed = [], []

    def task(i: int) -> bool:
        started.append(i)
        if i == 6:
            sixth.set()
        return sixth.wait(timeout=1.0) if i == 0 else True

    for value in in_order((lambda i=i: task(i) for i in range(12)), n_jobs=2, window=window):
        consumed.append(value)
        assert len(started) - len(consumed) <= (3 if window is None else 8)
    assert consumed == [window is not None] + [True] * 11


def test_an_error_in_a_task_is_raised_at_its_turn_and_later_tasks_are_not_started():
    started = []

    def task(i: int) -> int:
        started.append(i)
        if i == 2:
            raise ValueError("block 2 is bad")
        time.sleep(0.01)
        return i

    results = []
    with pytest.raises(ValueError, match="block 2 is bad"):
        for value in in_order((lambda i=i: task(i) for i in range(50)), n_jobs=2):
            results.append(value)
    assert results == [0, 1]
    assert max(started) < 10


def test_one_job_runs_the_tasks_in_the_calling_thread():
    names = list(in_order((threading.current_thread for _ in range(3)), n_jobs=1))
    assert names == [threading.main_thread()] * 3


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_n_jobs_must_be_a_positive_int_or_minus_one(n_jobs):
    with pytest.raises(ValueError, match="n_jobs must be a positive int"):
        resolve_n_jobs(n_jobs)


def test_minus_one_means_every_cpu_and_the_default_at_most_eight(monkeypatch):
    import clvmodels._threads as threads

    monkeypatch.delenv("CLVMODELS_N_JOBS", raising=False)
    assert resolve_n_jobs(-1) == available_cpus() >= 1
    assert resolve_n_jobs(5) == resolve_n_jobs(np.int64(5)) == 5
    monkeypatch.setattr(threads, "available_cpus", lambda: 64)
    assert (threads.resolve_n_jobs(None), threads.resolve_n_jobs(-1)) == (8, 64)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    assert threads.resolve_n_jobs(None) == 2


def test_the_default_can_be_set_in_the_environment(monkeypatch):
    monkeypatch.setenv("CLVMODELS_N_JOBS", "3")
    assert resolve_n_jobs(None) == 3 and resolve_n_jobs(2) == 2
    monkeypatch.setenv("CLVMODELS_N_JOBS", "-1")
    assert resolve_n_jobs(None) == available_cpus()
    for bad in ("0", "two", "1.5"):
        monkeypatch.setenv("CLVMODELS_N_JOBS", bad)
        with pytest.raises(ValueError, match=f"CLVMODELS_N_JOBS must be a positive int.*'{bad}'"):
            resolve_n_jobs(None)
