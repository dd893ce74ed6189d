"""The driver's Ray-side helpers that must be safe around Ray's shutdown and signals."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from orchestrator.tune.session import ClusterCapacity, stop_signals


def test_a_closed_capacity_answers_from_its_last_measurement_without_calling_ray() -> None:
    capacity = ClusterCapacity(cpu=1.0, gpu=0.0)
    capacity._value, capacity._at = 3, time.monotonic() - 3600  # due for a refresh
    capacity.close()
    # Ray is not running in this process: a call into it would raise (or end the process).
    assert capacity() == 3


def test_close_waits_for_a_measurement_in_flight() -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(ClusterCapacity):
        def _measure(self) -> int:
            entered.set()
            release.wait(5)
            return 2

    capacity = Slow(cpu=1.0, gpu=0.0)
    asker = threading.Thread(target=capacity)
    asker.start()
    assert entered.wait(5)
    closer = threading.Thread(target=capacity.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # Ray may not shut down while the measurement runs
    release.set()
    closer.join(5)
    asker.join(5)
    assert not closer.is_alive() and capacity() == 2


def test_stop_signals_hears_a_sigterm_its_starter_blocked_and_restores_the_mask() -> None:
    heard: list[str] = []
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        with stop_signals(heard.append):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs between bytecodes of the main thread
        assert heard == ["SIGTERM"]
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@pytest.fixture(autouse=True)
def _default_sigterm():
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)
