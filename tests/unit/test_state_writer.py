"""The background writer of the searcher state: newest first, nothing lost on flush, and a
failed write surfaces in the caller's thread."""

from __future__ import annotations

import threading

import pytest

from orchestrator.store.state_writer import LatestStateWriter


class GatedWrites:
    """Records what is written; the first write waits until `release` is set."""

    def __init__(self) -> None:
        self.written: list[dict] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_next: OSError | None = None

    def __call__(self, state: dict) -> None:
        self.entered.set()
        assert self.release.wait(timeout=30)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.written.append(state)


def test_a_burst_of_states_costs_one_write_and_the_newest_wins():
    writes = GatedWrites()
    writer = LatestStateWriter(writes)
    writer.submit({"n": 1})
    assert writes.entered.wait(timeout=30)  # the first write is under way and waits
    for n in (2, 3, 4):
        writer.submit({"n": n})
    writes.release.set()
    writer.flush()
    assert writes.written == [{"n": 1}, {"n": 4}]
    writer.close()


def test_flush_returns_only_once_the_newest_state_is_written():
    writes = GatedWrites()
    writer = LatestStateWriter(writes)
    writer.submit({"n": 1})
    flushed = threading.Event()
    flusher = threading.Thread(target=lambda: (writer.flush(), flushed.set()))
    flusher.start()
    assert not flushed.wait(timeout=0.3)  # the write is still held back
    writes.release.set()
    flusher.join(timeout=30)
    assert flushed.is_set() and writes.written == [{"n": 1}]
    writer.close()


def test_a_failed_write_is_raised_in_the_callers_thread_once():
    writes = GatedWrites()
    writes.release.set()
    writes.fail_next = OSError(28, "No space left on device")
    writer = LatestStateWriter(writes)
    writer.submit({"n": 1})
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    writer.submit({"n": 2})  # the disk has room again: writing goes on
    writer.close()
    assert writes.written == [{"n": 2}]


def test_close_ends_the_thread_and_a_later_submit_starts_another():
    writes = GatedWrites()
    writes.release.set()
    writer = LatestStateWriter(writes, name="state-writer-under-test")
    writer.submit({"n": 1})
    writer.close()
    assert not [t for t in threading.enumerate() if t.name == "state-writer-under-test"]
    writer.submit({"n": 2})
    writer.close()
    assert writes.written == [{"n": 1}, {"n": 2}]
