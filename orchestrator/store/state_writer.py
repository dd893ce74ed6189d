"""Writing the newest searcher state from a thread of its own, off the driver's event loop.

The planner saves the searcher state after every suggestion and every result. Written from
the event loop, each save cost it about 7 ms while a Gaussian-process suggestion was being
computed in another thread: every system call of the atomic write (open, write, two fsyncs,
rename) lets go of the interpreter lock, and taking it back waits for the other thread. The
ledger, not this file, is the record a crash must not lose (`TrialPlanner.resume` rebuilds
from the ledger what a late state missed), so the state can be written in the background:
the newest state wins, and a burst of changes costs one write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

State = dict[str, Any]


class LatestStateWriter:
    """Writes the latest submitted state with `write`, in a background thread.

    A failed write is raised by the next `submit`, `flush` or `close`, in the caller's thread:
    the error is the same one the write raised (an `OSError` for a full or read-only disk).
    """

    def __init__(self, write: Callable[[State], None], *, name: str = "searcher-state") -> None:
        self._write = write
        self._name = name
        self._changed = threading.Condition()
        self._latest: State | None = None  # submitted, not yet being written
        self._writing = False
        self._stopping = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, state: State) -> None:
        """Have `state` written soon; it replaces a submitted state not yet written. The
        caller must not change `state` afterwards."""
        with self._changed:
            self._raise_failure()
            self._latest = state
            if self._thread is None:
                # a daemon: a driver that dies loses at most the newest state, which resume
                # rebuilds from the ledger
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def flush(self) -> None:
        """Return once everything submitted so far is written."""
        with self._changed:
            while self._error is None and (self._latest is not None or self._writing):
                self._changed.wait()
            self._raise_failure()

    def close(self) -> None:
        """Flush and end the thread; a later `submit` starts a new one."""
        try:
            self.flush()
        finally:
            with self._changed:
                thread, self._thread = self._thread, None
                self._stopping = True
                self._changed.notify_all()
            if thread is not None:
                thread.join()
            with self._changed:
                self._stopping = False

    def _raise_failure(self) -> None:
        """Raise a failed write once (call with the condition held)."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._latest is None and not self._stopping:
                    self._changed.wait()
                if self._latest is None:
                    return
                state, self._latest = self._latest, None
                self._writing = True
            try:
                self._write(state)
            except BaseException as error:  # handed to the caller's thread, not lost here
                with self._changed:
                    self._error = error
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()
