"""Runs one trial's trainer as a subprocess and turns what happens into a `TrialEnd`.

The trainer gets its own process group, so a timeout or a stop ends it together with everything
it started (data-loader workers, shells), and nothing outlives the trial. Its output is read by
two threads (`orchestrator.trial.output`); the calling thread only supervises (exit, deadline,
stop request) and calls `on_metric`, so a blocking pipe can never hold up the timeout. No Ray in
here: the Ray trainable calls this, and the unit tests call it directly.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.errors import TrialError
from orchestrator.spec import MetricDefinition
from orchestrator.trial.classify import Ending, ProcessEnd, classify, not_started, summary
from orchestrator.trial.outcome import TrialEnd
from orchestrator.trial.output import LogFile, MetricTracker, OnMetric, StreamPump
from orchestrator.trial.parent_death import guard_with_parent_death

__all__ = ["OnMetric", "TrialSetupError", "run_trial_process"]

_POLL_INTERVAL_S = 0.05
# Once one of the trainer's output pipes has closed it is usually exiting: for a while, look for
# its exit this often, so a slot frees within milliseconds rather than a whole poll interval.
_EXITING_POLL_INTERVAL_S = 0.002
_EXITING_POLL_FOR_S = 1.0
# How long to wait for the pipes to close once the process group is dead; only a process that
# left the group (setsid) and kept our pipe open can make this wait run out.
_PIPE_DRAIN_TIMEOUT_S = 5.0


class TrialSetupError(TrialError, ValueError):
    """`run_trial_process` was called with arguments that cannot describe a trial."""


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
) -> TrialEnd:
    """Runs `argv` in `cwd` with exactly `env` and blocks until it ends; never leaves orphans.

    The log is appended to (a retry adds a header line and its own output). `on_metric` is
    called on this thread as metrics arrive, until a timeout or stop begins tearing the trainer
    down. A timeout or stop sends SIGTERM to the whole group, waits `grace_period_s`, then
    SIGKILLs the group. Call this from a thread that lives until it returns (it blocks): the
    trainer's parent-death signal follows the thread that started it. Raises `TrialSetupError`
    for bad arguments and `TrialError` if the log cannot be written; a trainer that cannot start
    is a FAILED end, not an exception.
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
    with LogFile(log_path) as log:
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
            outcome = not_started(error, cwd=cwd, duration_s=time.monotonic() - started)
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
        log.write(f"==== openamt {_utc_now()}: {summary(outcome)} ====\n")
    if log.error is not None:
        raise TrialError(f"could not write the trial log {log_path}: {log.error}") from log.error
    return outcome


def _supervise(
    *,
    process: subprocess.Popen[bytes],
    log: LogFile,
    metric_definitions: Sequence[MetricDefinition],
    objective_metric_name: str,
    on_metric: OnMetric | None,
    max_runtime_s: float | None,
    grace_period_s: float,
    stop_event: threading.Event | None,
    started: float,
) -> TrialEnd:
    """Watches the running trainer, tears its group down, and classifies how it ended."""
    assert process.stdout is not None and process.stderr is not None
    matches: queue.SimpleQueue[list[tuple[str, float]]] = queue.SimpleQueue()
    pumps = [
        StreamPump(stream=stream, name=name, log=log, definitions=metric_definitions, out=matches)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for pump in pumps:
        pump.start()
    tracker = MetricTracker(on_metric=on_metric)
    group = _ProcessGroup(process.pid)
    ending = Ending.EXITED
    try:
        deadline = None if max_runtime_s is None else started + max_runtime_s
        ending = _watch(group, matches, tracker, deadline=deadline, stop_event=stop_event)
        if ending is not Ending.EXITED:
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
    seen = ProcessEnd(
        ending=ending,
        returncode=process.returncode,
        signals_sent=tuple(group.signals_sent),
        last_metrics=dict(tracker.last),
        objective_reports=tracker.counts.get(objective_metric_name, 0),
        stderr_tail=pumps[1].tail(),
        stdout_tail=pumps[0].tail(),
        duration_s=time.monotonic() - started,
    )
    return classify(
        seen,
        objective_metric_name=objective_metric_name,
        objective_regex=_find(metric_definitions, objective_metric_name).regex,
        max_runtime_s=max_runtime_s,
        grace_period_s=grace_period_s,
    )


def _watch(
    group: _ProcessGroup,
    matches: queue.SimpleQueue[list[tuple[str, float]]],
    tracker: MetricTracker,
    *,
    deadline: float | None,
    stop_event: threading.Event | None,
) -> Ending:
    """Passes metrics on until the trainer exits, its time is up, or a stop is requested.
    Each pump posts an empty batch when its pipe closes (see `StreamPump`)."""
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
            return Ending.EXITED
        if stop_event is not None and stop_event.is_set():
            return Ending.STOPPED
        if deadline is not None and time.monotonic() >= deadline:
            return Ending.TIMED_OUT


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
