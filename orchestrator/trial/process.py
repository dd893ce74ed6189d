"""Runs one trial's trainer as a subprocess and turns what happens into a `TrialOutcome`.

The trainer gets its own process group, so a timeout or an early stop ends it together with
everything it started (data-loader workers, shells), and nothing outlives the trial. Its stdout
and stderr are read by two threads that append complete lines to the trial log and scrape
metrics as they arrive; the calling thread only supervises (exit, deadline, stop request) and
calls `on_metric`, so a blocking pipe can never hold up the timeout. No Ray in here: the Ray
trainable calls this, and the unit tests call it directly.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import math
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from orchestrator.errors import TrialError
from orchestrator.trial.metrics import MetricDefinition, MetricParser
from orchestrator.trial.parent_death import guard_with_parent_death
from orchestrator.trial.script_env import build_argv, build_training_env

__all__ = [
    "MetricDefinition",
    "OnMetric",
    "TrialOutcome",
    "TrialSetupError",
    "TrialStatus",
    "build_argv",
    "build_training_env",
    "run_trial_process",
]

OnMetric = Callable[[str, float, int], None]
"""`(name, value, step)`; `step` counts that metric's reports so far, starting at 1."""

_READ_CHUNK_BYTES = 64 * 1024
_POLL_INTERVAL_S = 0.05
# Once one of the trainer's output pipes has closed it is usually exiting: for a while, look for
# its exit this often, so a slot frees within milliseconds rather than a whole poll interval.
_EXITING_POLL_INTERVAL_S = 0.002
_EXITING_POLL_FOR_S = 1.0
# A line longer than this (a `\r` progress bar) is written to the log without waiting for `\n`.
_MAX_PENDING_CHARS = 64 * 1024
_TAIL_LINES = 20
_TAIL_CHARS = 2048
# Signals that come from outside the trainer (another process, the kernel's OOM killer, a node
# shutting down): the same hyperparameters can succeed on a retry. A crash signal (SIGSEGV,
# SIGABRT, ...) comes from the trainer's own code and would happen again.
_EXTERNAL_SIGNALS = frozenset(
    {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
)
# How long to wait for the pipes to close once the process group is dead; only a process that
# left the group (setsid) and kept our pipe open can make this wait run out.
_PIPE_DRAIN_TIMEOUT_S = 5.0


class TrialStatus(enum.Enum):
    """How a trial attempt ended; the values are SageMaker's training job statuses."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @classmethod
    def _missing_(cls, value: object) -> TrialStatus | None:
        """Accepts any capitalisation at the boundary: `TrialStatus("failed")`."""
        if isinstance(value, str):
            for status in cls:
                if status.value.lower() == value.lower():
                    return status
        return None


@dataclass(frozen=True)
class TrialOutcome:
    """What one run of the trainer produced.

    `objective` is the last value the trainer reported for the objective metric, because that is
    SageMaker's `FinalObjectiveValue`: the model the trial leaves behind is the last one, not the
    best epoch's. It is None for a FAILED trial and for a STOPPED one that reported no finite
    value yet; `metrics` still holds the last value of every metric. `retryable` is true only when
    something outside the trainer killed it (OOM killer, an external SIGKILL or SIGTERM), where
    running the same hyperparameters again can succeed. `signal` names the signal that ended
    the process.
    """

    status: TrialStatus
    objective: float | None
    reason: str | None
    exit_code: int | None
    signal: str | None
    retryable: bool
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)


class TrialSetupError(TrialError, ValueError):
    """`run_trial_process` was called with arguments that cannot describe a trial."""


class _Ending(enum.Enum):
    """Why supervision ended."""

    EXITED = "exited"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"


def run_trial_process(
    *,
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    metric_definitions: Sequence[MetricDefinition],
    objective_metric_name: str,
    on_metric: OnMetric | None = None,
    max_runtime_s: float | None = None,
    grace_period_s: float = 10.0,
    stop_event: threading.Event | None = None,
) -> TrialOutcome:
    """Runs `argv` in `cwd` with exactly `env` and blocks until it ends; never leaves orphans.

    The log is appended to (a retry adds a header line and its own output). `on_metric` is
    called on this thread as metrics arrive, until a timeout or stop begins tearing the trainer
    down. A timeout or stop sends SIGTERM to the whole group, waits `grace_period_s`, then
    SIGKILLs the group. Call this from a thread that lives until it returns (it blocks): the
    trainer's parent-death signal follows the thread that started it. Raises `TrialSetupError`
    for bad arguments and `TrialError` if the log cannot be written; a trainer that cannot start
    is a FAILED outcome, not an exception.
    """
    _check_arguments(
        argv=argv,
        metric_definitions=metric_definitions,
        objective_metric_name=objective_metric_name,
        max_runtime_s=max_runtime_s,
        grace_period_s=grace_period_s,
    )
    log_path = Path(log_path)
    started = time.monotonic()
    with _LogFile(log_path) as log:
        log.write(f"==== openamt {_utc_now()}: starting {shlex.join(argv)} ====\n")
        try:
            process = subprocess.Popen(
                guard_with_parent_death(list(argv)),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            outcome = _not_started(error, cwd=cwd, duration_s=time.monotonic() - started)
        else:
            outcome = _supervise(
                process=process,
                log=log,
                metric_definitions=metric_definitions,
                objective_metric_name=objective_metric_name,
                on_metric=on_metric,
                max_runtime_s=max_runtime_s,
                grace_period_s=grace_period_s,
                stop_event=stop_event,
                started=started,
            )
        log.write(f"==== openamt {_utc_now()}: {_summary(outcome)} ====\n")
    if log.error is not None:
        raise TrialError(f"could not write the trial log {log_path}: {log.error}") from log.error
    return outcome


def _supervise(
    *,
    process: subprocess.Popen[bytes],
    log: _LogFile,
    metric_definitions: Sequence[MetricDefinition],
    objective_metric_name: str,
    on_metric: OnMetric | None,
    max_runtime_s: float | None,
    grace_period_s: float,
    stop_event: threading.Event | None,
    started: float,
) -> TrialOutcome:
    """Watches the running trainer, tears its group down, and classifies how it ended."""
    assert process.stdout is not None and process.stderr is not None
    matches: queue.SimpleQueue[list[tuple[str, float]]] = queue.SimpleQueue()
    pumps = [
        _StreamPump(stream=stream, name=name, log=log, definitions=metric_definitions, out=matches)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for pump in pumps:
        pump.start()
    tracker = _MetricTracker(on_metric=on_metric)
    group = _ProcessGroup(process.pid)
    ending = _Ending.EXITED
    try:
        deadline = None if max_runtime_s is None else started + max_runtime_s
        ending = _watch(group, matches, tracker, deadline=deadline, stop_event=stop_event)
        if ending is not _Ending.EXITED:
            tracker.live = False
            group.terminate(grace_period_s=grace_period_s)
    finally:
        # Whatever happened above (an exception from on_metric included), nothing may survive.
        group.kill()
        process.wait()
        for pump in pumps:
            pump.join(timeout=_PIPE_DRAIN_TIMEOUT_S)
    tracker.record_all(matches)
    for pump in pumps:
        if pump.error is not None:
            raise TrialError(f"reading the trainer's {pump.name} failed: {pump.error}")
    return _classify(
        ending=ending,
        returncode=process.returncode,
        signals_sent=group.signals_sent,
        tracker=tracker,
        objective_definition=_find(metric_definitions, objective_metric_name),
        stderr_tail=pumps[1].tail(),
        stdout_tail=pumps[0].tail(),
        max_runtime_s=max_runtime_s,
        grace_period_s=grace_period_s,
        duration_s=time.monotonic() - started,
    )


def _watch(
    group: _ProcessGroup,
    matches: queue.SimpleQueue[list[tuple[str, float]]],
    tracker: _MetricTracker,
    *,
    deadline: float | None,
    stop_event: threading.Event | None,
) -> _Ending:
    """Passes metrics on until the trainer exits, its time is up, or a stop is requested.
    Each pump posts an empty batch when its pipe closes (see `_StreamPump`)."""
    fast_until = -math.inf
    while True:
        now = time.monotonic()
        wait_s = _EXITING_POLL_INTERVAL_S if now < fast_until else _POLL_INTERVAL_S
        if deadline is not None:
            wait_s = max(0.0, min(wait_s, deadline - time.monotonic()))
        with contextlib.suppress(queue.Empty):
            batch = matches.get(timeout=wait_s)
            if not batch:
                fast_until = time.monotonic() + _EXITING_POLL_FOR_S
            tracker.record(batch)
        tracker.record_all(matches)
        if group.leader_exited():
            return _Ending.EXITED
        if stop_event is not None and stop_event.is_set():
            return _Ending.STOPPED
        if deadline is not None and time.monotonic() >= deadline:
            return _Ending.TIMED_OUT


def _classify(
    *,
    ending: _Ending,
    returncode: int,
    signals_sent: list[signal.Signals],
    tracker: _MetricTracker,
    objective_definition: MetricDefinition,
    stderr_tail: str,
    stdout_tail: str,
    max_runtime_s: float | None,
    grace_period_s: float,
    duration_s: float,
) -> TrialOutcome:
    """Maps how the process ended onto SageMaker's statuses and a reason a person can act on."""
    exit_code = returncode if returncode >= 0 else None
    killed_by = signal.Signals(-returncode) if returncode < 0 else None
    objective = tracker.last.get(objective_definition.name)

    def outcome(
        status: TrialStatus, reason: str | None, *, retryable: bool = False
    ) -> TrialOutcome:
        # A failed trial has no objective (SageMaker reports none); its metrics keep the values.
        scored = status is not TrialStatus.FAILED and objective is not None
        return TrialOutcome(
            status=status,
            objective=objective if scored and math.isfinite(objective) else None,
            reason=reason,
            exit_code=exit_code,
            signal=killed_by.name if killed_by is not None else None,
            retryable=retryable,
            duration_s=duration_s,
            metrics=dict(tracker.last),
        )

    escalated = signal.SIGKILL in signals_sent and killed_by is signal.SIGKILL
    escalation = f" (killed with SIGKILL after grace_period_s={grace_period_s:g})"
    if ending is _Ending.TIMED_OUT:
        reason = f"exceeded max_runtime_in_seconds={max_runtime_s:g}"
        return outcome(TrialStatus.FAILED, reason + (escalation if escalated else ""))
    if ending is _Ending.STOPPED:
        reason = "stopped early on request" + (escalation if escalated else "")
        return outcome(TrialStatus.STOPPED, reason)
    if killed_by is not None:
        external = killed_by in _EXTERNAL_SIGNALS
        reason = f"trainer was killed by signal {killed_by.name}, which openamt did not send" + (
            " (the OOM killer or something outside the trial)" if external else ""
        )
        return outcome(
            TrialStatus.FAILED, reason + _tails(stderr_tail, stdout_tail), retryable=external
        )
    if returncode != 0:
        reason = f"trainer exited with code {returncode}"
        return outcome(TrialStatus.FAILED, reason + _tails(stderr_tail, stdout_tail))
    if objective is None:
        reason = (
            f"objective metric {objective_definition.name!r} never matched its regex "
            f"{objective_definition.regex.pattern!r} in the trainer's output"
        )
        return outcome(TrialStatus.FAILED, reason)
    if not math.isfinite(objective):
        reason = (
            f"objective metric {objective_definition.name!r} ended at {objective!r}, "
            "which is not a finite number"
        )
        return outcome(TrialStatus.FAILED, reason)
    return outcome(TrialStatus.COMPLETED, None)


def _tails(stderr_tail: str, stdout_tail: str) -> str:
    if stderr_tail:
        return f"; last lines of stderr:\n{stderr_tail}"
    if stdout_tail:
        return f"; stderr was empty; last lines of stdout:\n{stdout_tail}"
    return "; the trainer printed nothing"


def _not_started(error: OSError, *, cwd: Path, duration_s: float) -> TrialOutcome:
    return TrialOutcome(
        status=TrialStatus.FAILED,
        objective=None,
        reason=f"could not start the trainer in {str(cwd)!r}: {error}",
        exit_code=None,
        signal=None,
        retryable=False,
        duration_s=duration_s,
    )


def _summary(outcome: TrialOutcome) -> str:
    first_line = (outcome.reason or "").split("\n", 1)[0]
    return (
        f"{outcome.status.value}"
        + (f": {first_line}" if first_line else "")
        + f" after {outcome.duration_s:.1f}s"
    )


class _MetricTracker:
    """Counts each metric's reports and keeps its last value; calls `on_metric` while `live`."""

    def __init__(self, *, on_metric: OnMetric | None) -> None:
        self._on_metric = on_metric
        self._counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.live = True

    def record(self, batch: list[tuple[str, float]]) -> None:
        for name, value in batch:
            step = self._counts[name] = self._counts.get(name, 0) + 1
            self.last[name] = value
            if self.live and self._on_metric is not None:
                self._on_metric(name, value, step)

    def record_all(self, matches: queue.SimpleQueue[list[tuple[str, float]]]) -> None:
        while True:
            try:
                self.record(matches.get_nowait())
            except queue.Empty:
                return


class _ProcessGroup:
    """The trainer's process group (its id is the trainer's pid) and the signals sent to it."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.signals_sent: list[signal.Signals] = []

    def leader_exited(self) -> bool:
        """True once the trainer has exited, without reaping it: while the zombie exists its pid
        cannot be reused, so signalling the group afterwards cannot hit a stranger."""
        try:
            info = os.waitid(os.P_PID, self._pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0

    def terminate(self, *, grace_period_s: float) -> None:
        """SIGTERM the group, give the trainer `grace_period_s` to exit, then SIGKILL the group."""
        self._send(signal.SIGTERM)
        give_up = time.monotonic() + grace_period_s
        while not self.leader_exited() and time.monotonic() < give_up:
            time.sleep(_POLL_INTERVAL_S)
        if not self.leader_exited():
            self._send(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL whatever is left of the group (children the trainer left behind)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signal.SIGKILL)

    def _send(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self._pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        self.signals_sent.append(sig)


class _LogFile:
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

    def __enter__(self) -> _LogFile:
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


class _StreamPump:
    """Reads one pipe on a thread: complete lines to the log, metric matches to `out`.

    Bytes are decoded incrementally with replacement, so a multi-byte character split across
    reads survives and invalid UTF-8 cannot stop the reader.
    """

    def __init__(
        self,
        *,
        stream: IO[bytes],
        name: str,
        log: _LogFile,
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


def _check_arguments(
    *,
    argv: Sequence[str],
    metric_definitions: Sequence[MetricDefinition],
    objective_metric_name: str,
    max_runtime_s: float | None,
    grace_period_s: float,
) -> None:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise TrialSetupError(f"argv={argv!r}: must be a non-empty list of strings")
    names = [definition.name for definition in metric_definitions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TrialSetupError(
            f"metric_definitions names {duplicates}: each metric name must appear once"
        )
    if objective_metric_name not in names:
        raise TrialSetupError(
            f"objective_metric_name={objective_metric_name!r}: must be one of the metric "
            f"definitions' names {names}"
        )
    if max_runtime_s is not None and not (math.isfinite(max_runtime_s) and max_runtime_s > 0):
        raise TrialSetupError(f"max_runtime_s={max_runtime_s!r}: must be a finite number > 0")
    if not (math.isfinite(grace_period_s) and grace_period_s >= 0):
        raise TrialSetupError(f"grace_period_s={grace_period_s!r}: must be a finite number >= 0")


def _find(definitions: Sequence[MetricDefinition], name: str) -> MetricDefinition:
    return next(definition for definition in definitions if definition.name == name)


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
