"""Chains in forked processes (:mod:`clvmodels.models._sampling`): their draws come
back joined, and a sampling process that dies is reported and its chains run again in
this process, where a ``multiprocessing.Pool`` waited for the lost result for ever."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

from clvmodels.models import _sampling
from clvmodels.models._sampling import sample_density

_REAL_SAMPLE_PART = _sampling._sample_part
_PARENT = {"pid": -1, "flag": ""}


def _standard_normal():
    def log_density(x):
        return -0.5 * float(x @ x), -x

    return log_density


def _first_coordinate():
    return lambda x: [x[0]]


def _dies_in_a_worker(part):
    """The chains' work, except in a forked worker, which ends at once."""
    if os.getpid() != _PARENT["pid"]:
        os._exit(3)
    return _REAL_SAMPLE_PART(part)


class _Unpicklable(BaseException):
    """Like a Rust panic raised through PyO3: not an Exception, and not picklable."""

    def __reduce__(self):
        raise TypeError("cannot pickle")


def _fails_in_a_worker(part):
    if os.getpid() != _PARENT["pid"]:
        raise _Unpicklable("the density raised ZeroDivisionError")
    return _REAL_SAMPLE_PART(part)


def _interrupts_and_sleeps_in_a_worker(part):
    """In a worker: the first to start sends the parent SIGINT (so that it arrives
    while the parent waits for the pool), then each sleeps as a long chain would."""
    if os.getpid() != _PARENT["pid"]:
        try:
            os.close(os.open(_PARENT["flag"], os.O_CREAT | os.O_EXCL))
            os.kill(_PARENT["pid"], signal.SIGINT)
        except FileExistsError:
            pass
        time.sleep(60)
    return _REAL_SAMPLE_PART(part)


def _sample():
    return sample_density(
        _standard_normal, _first_coordinate, np.zeros(1), ["mu"], draws=300, tune=200,
        chains=2, random_state=1, progressbar=False, cores=2,
    )


def _check_standard_normal(idata):
    mu = idata.posterior["mu"]
    assert mu.sizes == {"chain": 2, "draw": 300}
    # 600 draws of N(0, 1): the mean's sd is about 0.05 (a little more for autocorrelation)
    assert abs(float(mu.mean())) < 0.3
    assert 0.8 < float(mu.std()) < 1.2


def test_two_chains_in_two_processes_come_back_as_one_posterior():
    _check_standard_normal(_sample())


def test_a_worker_that_dies_is_reported_and_its_chains_run_here(monkeypatch):
    _PARENT["pid"] = os.getpid()
    monkeypatch.setattr(_sampling, "_sample_part", _dies_in_a_worker)
    # In a thread with a deadline: the old pool's wait never ended, which should fail
    # this test rather than hang the suite.
    outcome = {}

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome["idata"] = _sample()
        outcome["warnings"] = [str(w.message) for w in caught if w.category is RuntimeWarning]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "sampling still waits for a process that died"
    assert any("ended abruptly" in w and "ran again in this process" in w
               for w in outcome["warnings"]), outcome["warnings"]
    _check_standard_normal(outcome["idata"])


def test_an_error_in_a_worker_comes_back_with_its_message(monkeypatch):
    _PARENT["pid"] = os.getpid()
    monkeypatch.setattr(_sampling, "_sample_part", _fails_in_a_worker)
    with pytest.raises(RuntimeError, match="_Unpicklable: the density raised ZeroDivisionError"):
        _sample()


def test_an_interrupt_ends_the_workers_at_once(monkeypatch, tmp_path):
    # Chains that would run for a minute: Ctrl-C (SIGINT to this process only, as a
    # notebook's stop sends it) raises at once and leaves no worker behind. Python's
    # own handler for the test's length: libraries loaded by other tests (Spark) set
    # theirs.
    _PARENT.update(pid=os.getpid(), flag=str(tmp_path / "interrupted"))
    monkeypatch.setattr(_sampling, "_sample_part", _interrupts_and_sleeps_in_a_worker)
    before = set(multiprocessing.active_children())
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            _sample()
    finally:
        signal.signal(signal.SIGINT, handler)
    assert (tmp_path / "interrupted").exists()  # the signal came from a running worker
    assert time.monotonic() - start < 30
    deadline = time.monotonic() + 10
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(multiprocessing.active_children()) - before
