"""The in-process scheduler on its own: one-off calls in due order, periodic jobs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from itertools import pairwise

import pytest

from config.scheduler import Scheduler


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    scheduler = Scheduler(name="test", workers=2)
    yield scheduler
    scheduler.stop()


def test_a_call_later_never_blocks_and_calls_run_in_due_order(
    scheduler: Scheduler,
) -> None:
    ran: list[str] = []
    done = threading.Event()

    def job(name: str) -> None:
        ran.append(name)
        if len(ran) == 3:
            done.set()

    started = time.monotonic()
    scheduler.call_later(0.3, job, "late")
    scheduler.call_later(0.0, job, "now")
    scheduler.call_later(0.1, job, "soon")
    assert time.monotonic() - started < 0.05
    assert done.wait(5)
    assert ran == ["now", "soon", "late"]


def test_a_failing_call_does_not_stop_the_queue(scheduler: Scheduler) -> None:
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("receiver exploded")

    scheduler.call_later(0, boom)
    scheduler.call_later(0.05, done.set)
    assert done.wait(5)


def test_stopping_drops_pending_calls_and_refuses_new_work() -> None:
    scheduler = Scheduler(name="test", workers=1)
    ran = threading.Event()
    scheduler.call_later(0.2, ran.set)
    scheduler.stop()
    assert not ran.wait(0.4)
    assert scheduler.pending() == 0
    with pytest.raises(RuntimeError):
        scheduler.call_later(0, ran.set)
    with pytest.raises(RuntimeError):
        scheduler.every("late", lambda: 1.0, ran.set)


def test_a_periodic_job_first_runs_one_interval_after_it_is_added_then_every_interval(
    scheduler: Scheduler,
) -> None:
    runs: list[float] = []
    third = threading.Event()

    def job() -> None:
        runs.append(time.monotonic())
        if len(runs) == 3:
            third.set()

    added = time.monotonic()
    scheduler.every("tick", lambda: 0.2, job)
    assert scheduler.periodic() == ["tick"]
    assert third.wait(10)
    starts = [added, *runs[:3]]
    # Never early; lateness is the machine's business, so no upper bound.
    assert all(b - a >= 0.19 for a, b in pairwise(starts))


def test_a_periodic_job_never_overlaps_itself(scheduler: Scheduler) -> None:
    active = 0
    most = 0
    runs = 0
    lock = threading.Lock()
    release = threading.Event()
    first_started = threading.Event()
    enough = threading.Event()

    def slow() -> None:
        nonlocal active, most, runs
        with lock:
            active += 1
            most = max(most, active)
        first_started.set()
        release.wait(10)  # the first run outlasts many intervals
        with lock:
            active -= 1
            runs += 1
            if runs == 3:
                enough.set()

    scheduler.every("slow", lambda: 0.01, slow)
    assert first_started.wait(10)
    time.sleep(0.3)  # thirty intervals in which a second run could wrongly start
    with lock:
        assert (active, runs) == (1, 0)
    release.set()
    assert enough.wait(10)
    assert most == 1


def test_a_failing_periodic_job_is_logged_once_and_keeps_its_schedule(
    scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = 0
    recovered = threading.Event()

    def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionError("database unreachable")
        recovered.set()

    with caplog.at_level(logging.INFO, logger="config.scheduler"):
        scheduler.every("flaky", lambda: 0.05, flaky)
        assert recovered.wait(10)
        scheduler.stop()
    failures = [
        r
        for r in caplog.records
        if r.name == "config.scheduler" and r.levelno >= logging.ERROR
    ]
    assert [r.getMessage() for r in failures] == ["Periodic job 'flaky' failed"]
    assert failures[0].exc_info
    assert any("succeeded again" in r.getMessage() for r in caplog.records)


def test_stopping_ends_periodic_jobs() -> None:
    scheduler = Scheduler(name="test", workers=1)
    runs: list[int] = []
    first = threading.Event()

    def job() -> None:
        runs.append(1)
        first.set()

    scheduler.every("tick", lambda: 0.05, job)
    assert first.wait(10)
    scheduler.stop()
    stopped_at = len(runs)
    time.sleep(0.2)
    assert len(runs) == stopped_at
