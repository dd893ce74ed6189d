"""A trainer's output as it arrives: its log file, the threads that read its pipes, its metrics.

Two pump threads (stdout, stderr) append complete lines to the trial log and scrape metrics as
they arrive; the supervising thread only collects the matches (`MetricTracker`), so a blocking
pipe can never hold up a timeout or a stop. Trainer output is data: the log keeps it verbatim
(up to a size limit, head and tail kept), and the tails quoted in a failure reason have terminal
control sequences removed, so they can be shown anywhere.
"""

from __future__ import annotations

import codecs
import math
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from orchestrator.errors import TrialError
from orchestrator.spec import MetricDefinition
from orchestrator.spec.schema import DEFAULT_MAX_LOG_BYTES
from orchestrator.trial.metrics import MetricParser

OnMetric = Callable[[str, float, int], None]
"""`(name, value, step)`; `step` counts that metric's reports so far, starting at 1."""

#: One pump's matches from one read: (stream name, [(metric name, value), ...]).
Batch = tuple[str, list[tuple[str, float]]]
Matches = queue.SimpleQueue[Batch]

_READ_CHUNK_BYTES = 64 * 1024
# A line longer than this (a `\r` progress bar) is written to the log without waiting for `\n`.
_MAX_PENDING_CHARS = 64 * 1024
_TAIL_LINES = 20
_TAIL_CHARS = 2048
# How far (in reports of one metric) one stream may lag the other and still be recognised as
# printing the same lines.
_ECHO_WINDOW = 4096
# Terminal control: CSI and OSC escape sequences, then any other C0/C1 control but \t and \n.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.|"
                      r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # fmt: skip


def without_control_sequences(text: str) -> str:
    """`text` with terminal escape sequences and control characters removed (a `\\r` redraw
    becomes a line break), safe to print on a terminal or in a report."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


class MetricTracker:
    """Counts each metric's reports and keeps its last value; calls `on_metric` while `live`.

    A trainer that prints the same line on stdout and stderr (a logger with two handlers)
    reports once, not twice: per metric, each stream's reports are lined up with the reports
    so far, and a value that repeats, at the same position, what the other stream already
    reported there is that report's echo.
    """

    def __init__(self, *, on_metric: OnMetric | None) -> None:
        self._on_metric = on_metric
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.live = True
        self._recent: dict[str, deque[float]] = {}  # metric -> its latest values, in order
        self._position: dict[tuple[str, str], int] = {}  # (metric, stream) -> reports seen

    def record(self, batch: Batch) -> None:
        stream, found = batch
        for name, value in found:
            if self._is_echo(name, value, stream):
                continue
            step = self.counts[name] = self.counts.get(name, 0) + 1
            self._recent.setdefault(name, deque(maxlen=_ECHO_WINDOW)).append(value)
            self._position[(name, stream)] = step
            self.last[name] = value
            if self.live and self._on_metric is not None:
                self._on_metric(name, value, step)

    def _is_echo(self, name: str, value: float, stream: str) -> bool:
        """Whether this stream's next report repeats the value already reported there."""
        total, recent = self.counts.get(name, 0), self._recent.get(name)
        position = self._position.get((name, stream), 0)
        offset = position - (total - len(recent)) if recent else -1
        if not 0 <= offset < len(recent or ()) or position >= total:
            return False
        earlier = recent[offset]  # type: ignore[index]
        if earlier == value or (math.isnan(value) and math.isnan(earlier)):
            self._position[(name, stream)] = position + 1
            return True
        return False

    def record_all(self, matches: Matches) -> None:
        while True:
            try:
                self.record(matches.get_nowait())
            except queue.Empty:
                return


class LogFile:
    """The trial log, appended to by both pump threads one block of complete lines at a time.

    It keeps the first half of `max_bytes` as written and, past that, only the most recent half
    (written when the log closes), with a line saying how much was left out between them. A
    write error (disk full) is remembered and later writes are skipped, so the pumps keep
    draining the pipes and the trainer never blocks on a full one. Writes after closing (from a
    pump still held open by a process that escaped the trial) are dropped.
    """

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_LOG_BYTES) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._head_left = max_bytes // 2
        self._tail: deque[str] = deque()
        self._tail_size, self._tail_limit = 0, max_bytes - max_bytes // 2
        self._left_out = 0
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
                if self._tail:
                    file.write(self._truncation_note() + "".join(self._tail))
                file.close()
            except OSError as error:
                self.error = self.error or error

    def write(self, text: str) -> None:
        with self._lock:
            if self._file is None or self.error is not None:
                return
            if self._head_left > 0:
                head, text = text[: self._head_left], text[self._head_left :]
                self._head_left -= len(head)
                self._write(head)
            if text:
                self._keep_in_tail(text)

    def _write(self, text: str) -> None:
        try:
            self._file.write(text)  # type: ignore[union-attr]
            self._file.flush()  # type: ignore[union-attr]
        except OSError as error:
            self.error = error

    def _keep_in_tail(self, text: str) -> None:
        self._tail.append(text)
        self._tail_size += len(text)
        while self._tail_size > self._tail_limit and len(self._tail) > 1:
            dropped = self._tail.popleft()
            self._tail_size -= len(dropped)
            self._left_out += len(dropped)
        if self._tail_size > self._tail_limit:  # one block larger than the whole tail
            cut = self._tail_size - self._tail_limit
            self._tail[0] = self._tail[0][cut:]
            self._tail_size -= cut
            self._left_out += cut

    def _truncation_note(self) -> str:
        return (
            f"\n==== openamt: {self._left_out} characters of output left out here (the trial "
            "log keeps its first and last part; raise max_trial_log_bytes to keep more) ====\n"
        )


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
        out: Matches,
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
        """The last lines read, at most `_TAIL_LINES` lines and about `_TAIL_CHARS` characters,
        without terminal control sequences."""
        text = without_control_sequences("\n".join(self._tail)).rstrip()
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
            self._out.put((self.name, []))  # the pipe closed: the trainer is probably exiting

    def _take(self, text: str, *, final: bool) -> None:
        found = self._parser.feed(text)
        if final:
            found += self._parser.finish()
        for warning in self._parser.take_warnings():
            self._log.write(f"==== openamt: {warning} ====\n")
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
            self._out.put((self.name, found))
