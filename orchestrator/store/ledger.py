"""The job ledger: an append-only JSONL file of trial events, the job's source of truth.

Every event is one JSON object on one line, flushed and fsync'd before the call returns, so a
crash loses at most the line being written. Reading tolerates exactly that: a final line with no
newline (a torn write) is dropped with a warning; damage anywhere else refuses to load, because
silently skipping finished trials would repeat them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import ResumeError
from orchestrator.store.job_dir import JobDir, file_mode

log = logging.getLogger(__name__)


class Event(str, enum.Enum):
    """Kinds of ledger lines."""

    JOB_STARTED = "job_started"
    TRIAL_STARTED = "trial_started"
    TRIAL_RESULT = "trial_result"
    TRIAL_COMPLETED = "trial_completed"
    JOB_COMPLETED = "job_completed"
    JOB_INTERRUPTED = "job_interrupted"


class LedgerCorruptError(ResumeError):
    """The ledger has a damaged line before its end; resuming over it could repeat trials."""


class Ledger:
    """Appends events to the job's ledger file; one writer (the driver) per job."""

    def __init__(self, *, job_dir: Path) -> None:
        self.path = JobDir(path=Path(job_dir)).ledger_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._broken: OSError | None = None
        self._repair_torn_tail()

    def append(self, event: Event, **fields: Any) -> dict[str, Any]:
        """Write one event durably and return it as written.

        A write that fails part-way (ENOSPC, EFBIG, EIO) is cut back to the last whole line,
        so the next append cannot glue onto a fragment; after such a failure the ledger
        refuses every further append (raising the first error again) for the life of this
        object: the driver must stop, and the next one starts from a whole file."""
        if self._broken is not None:
            raise self._broken
        record = {"event": event.value, "time": time.time(), **fields}
        data = (json.dumps(record, allow_nan=False, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as error:
                self._broken = error
                with contextlib.suppress(OSError):  # a torn tail is cut on the next open too
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                raise
        finally:
            os.close(fd)
        return record

    def events(self) -> list[dict[str, Any]]:
        """All complete events in order."""
        return read_events(self.path)

    def _repair_torn_tail(self) -> None:
        """Cut a torn final line so the next append starts on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning(
            "ledger %s ends with a torn line (%d bytes, a crash during a write); dropping it",
            self.path,
            len(data) - keep,
        )
        with open(self.path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())


def read_events(path: Path) -> list[dict[str, Any]]:
    """Parse a ledger file; a torn last line is ignored, damage elsewhere raises."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_text(encoding="utf-8", errors="replace")
    lines = raw.split("\n")
    torn_tail = lines.pop()  # "" when the file ends with a newline
    if torn_tail:
        log.warning("ignoring torn last line of %s: %.80r", path, torn_tail)
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise LedgerCorruptError(
                f"{path}: line {number} is not valid JSON ({error.msg}); the ledger is damaged "
                "before its end. Refusing to resume over it: restore the file or move the job "
                "directory aside to start afresh."
            ) from error
        if not isinstance(record, dict) or "event" not in record:
            raise LedgerCorruptError(f"{path}: line {number} is not a ledger event: {line[:80]!r}")
        events.append(record)
    return events


_JOB_LEVEL_EVENTS = frozenset(
    {Event.JOB_STARTED.value, Event.JOB_COMPLETED.value, Event.JOB_INTERRUPTED.value}
)


def last_job_event(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The latest job_started, job_completed or job_interrupted event."""
    return next((e for e in reversed(events) if e.get("event") in _JOB_LEVEL_EVENTS), None)


def last_run_ended(events: Sequence[Mapping[str, Any]]) -> bool:
    """True when the latest driver run recorded its end (completed or interrupted)."""
    last = last_job_event(events)
    return last is not None and last["event"] != Event.JOB_STARTED.value
