"""A trainer's output as it arrives: its log file, the threads that read its pipes, its metrics.

Two pump threads (stdout, stderr) append complete lines to the trial log and scrape metrics as
they arrive; the supervising thread only collects the matches (`MetricTracker`), so a blocking
pipe can never hold up a timeout or a stop.
"""

from __future__ import annotations

import codecs
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from orchestrator.errors import TrialError
from orchestrator.spec import MetricDefinition
from orchestrator.trial.metrics import MetricParser

OnMetric = Callable[[str, float, int], None]
"""`(name, value, step)`; `step` counts that metric's reports so far, starting at 1."""

_READ_CHUNK_BYTES = 64 * 1024
# A line longer than this (a `\r` progress bar) is written to the log without waiting for `\n`.
_MAX_PENDING_CHARS = 64 * 1024
_TAIL_LINES = 20
_TAIL_CHARS = 2048


class MetricTracker:
    """Counts each metric's reports and keeps its last value; calls `on_metric` while `live`."""

    def __init__(self, *, on_metric: OnMetric | None) -> None:
        self._on_metric = on_metric
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.live = True

    def record(self, batch: list[tuple[str, float]]) -> None:
        for name, value in batch:
            step = self.counts[name] = self.counts.get(name, 0) + 1
            self.last[name] = value
            if self.live and self._on_metric is not None:
                self._on_metric(name, value, step)

    def record_all(self, matches: queue.SimpleQueue[list[tuple[str, float]]]) -> None:
        while True:
            try:
                self.record(matches.get_nowait())
            except queue.Empty:
                return


class LogFile:
    """The trial log, appended to by both pump threads one block of complete lines at a time.

    A write error (disk full) is remembered and later writes are skipped, so the pumps keep
    draining the pipes and the trainer never blocks on a full one. Writes after closing (from a
    pump still held open by a process that escaped the group) are dropped.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.error: OSError | None = None

    def __enter__(self) -> LogFile:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as error:
            raise TrialError(f"could not open the trial log {self._path}: {error}") from error
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            file, self._file = self._file, None
            if file is None:
                return
            try:
                file.close()
            except OSError as error:
                self.error = self.error or error

    def write(self, text: str) -> None:
        with self._lock:
            if self._file is None or self.error is not None:
                return
            try:
                self._file.write(text)
                self._file.flush()
            except OSError as error:
                self.error = error


class StreamPump:
    """Reads one pipe on a thread: complete lines to the log, metric matches to `out`.

    Bytes are decoded incrementally with replacement, so a multi-byte character split across
    reads survives and invalid UTF-8 cannot stop the reader.
    """

    def __init__(
        self,
        *,
        stream: IO[bytes],
        name: str,
        log: LogFile,
        definitions: Sequence[MetricDefinition],
        out: queue.SimpleQueue[list[tuple[str, float]]],
    ) -> None:
        self.name = name
        self.error: Exception | None = None
        self._stream = stream
        self._log = log
        self._parser = MetricParser(definitions=definitions)
        self._out = out
        self._pending = ""
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._thread = threading.Thread(target=self._run, name=f"openamt-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, *, timeout: float) -> None:
        self._thread.join(timeout)

    def tail(self) -> str:
        """The last lines read, at most `_TAIL_LINES` lines and about `_TAIL_CHARS` characters."""
        text = "\n".join(self._tail).rstrip()
        return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]

    def _run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            while chunk := read(_READ_CHUNK_BYTES):
                self._take(decoder.decode(chunk), final=False)
            self._take(decoder.decode(b"", final=True), final=True)
        except Exception as error:  # surfaced by the supervising thread, which raises it
            self.error = error
        finally:
            self._stream.close()
            self._out.put([])  # the pipe closed: the trainer is probably exiting

    def _take(self, text: str, *, final: bool) -> None:
        found = self._parser.feed(text)
        if final:
            found += self._parser.finish()
        text = self._pending + text
        cut = text.rfind("\n") + 1
        if final or len(text) - cut > _MAX_PENDING_CHARS:
            cut = len(text)
        complete, self._pending = text[:cut], text[cut:]
        if complete:
            if not complete.endswith("\n"):
                complete += "\n"
            self._log.write(complete)
            self._tail.extend(complete[-2 * _TAIL_CHARS :].splitlines())
        if found:
            self._out.put(found)
