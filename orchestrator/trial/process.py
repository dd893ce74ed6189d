"""Runs one trial's trainer as a subprocess and turns what happens into a `TrialEnd`.

The trainer runs under the trial supervisor (`orchestrator.trial.supervisor`), which ends it
together with everything it started — data-loader workers, shells, `setsid` helpers — on every
path: exit, timeout, stop, and the death of the thread that started it. Its output is read by
two threads (`orchestrator.trial.output`); the calling thread only supervises (exit, deadline,
stop request) and calls `on_metric`, so a blocking pipe can never hold up a timeout or a stop.
No Ray in here: the Ray trainable calls this, and the unit tests call it directly.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.errors import TrialError
from orchestrator.spec import MetricDefinition
from orchestrator.spec.schema import DEFAULT_GRACE_PERIOD_S, DEFAULT_MAX_LOG_BYTES
from orchestrator.trial.classify import (
    Ending,
    ProcessEnd,
    classify,
    not_started,
    oom_kill_count,
    summary,
)
from orchestrator.trial.outcome import StopRequest, TrialEnd
from orchestrator.trial.output import (
    LogFile,
    Matches,
    MetricTracker,
    OnMetric,
    StreamPump,
)
from orchestrator.trial.supervisors import SUPERVISOR, SupervisorPool

__all__ = ["OnMetric", "TrialSetupError", "run_trial_process", "supervised_argv"]

_POLL_INTERVAL_S = 0.05
# Once one of the trainer's output pipes has closed it is usually exiting: for a while, look for
# its exit this often, so a slot frees within milliseconds rather than a whole poll interval.
_EXITING_POLL_INTERVAL_S = 0.002
_EXITING_POLL_FOR_S = 1.0
# How long the supervisor may take beyond the grace period before it is killed itself.
_SUPERVISOR_SLACK_S = 10.0
# How long to wait for the pipes to close once the supervisor is gone; only a process that
# escaped it and kept our pipe open can make this wait run out.
_PIPE_DRAIN_TIMEOUT_S = 5.0


class TrialSetupError(TrialError, ValueError):
    """`run_trial_process` was called with arguments that cannot describe a trial."""


def supervised_argv(argv: Sequence[str], *, grace_period_s: float) -> list[str]:
    """`argv` run under the trial supervisor (Linux); unchanged where it cannot work."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return list(argv)
    return [sys.executable, "-I", "-S", str(SUPERVISOR), str(os.getpid()),
            repr(float(grace_period_s)), "--", *argv]  # fmt: skip


def run_trial_process(
    *,
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    metric_definitions: Sequence[MetricDefinition],
    objective_metric_name: str,
    on_metric: OnMetric | None = None,
    on_tick: Callable[[], None] | None = None,
    max_runtime_s: float | None = None,
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S,
    stop_requested: Callable[[], StopRequest | None] | None = None,
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    supervisors: SupervisorPool | None = None,
) -> TrialEnd:
    """Runs `argv` in `cwd` with exactly `env` and blocks until it ends; never leaves orphans.

    The log is appended to (a retry adds a header line and its own output) and kept below
    `max_log_bytes` (its head and its tail). `on_metric` is called on this thread as metrics
    arrive, until a timeout or stop begins tearing the trainer down; `on_tick` after each look
    at the trainer (a few times a second at least). A timeout, or `stop_requested()` returning
    a request, sends SIGTERM to the trainer and everything it started, waits `grace_period_s`,
    then SIGKILLs them. Call this from a thread that lives until it returns (it blocks): the
    supervisor's parent-death signal follows the thread that started it. Raises
    `TrialSetupError` for bad arguments and `TrialError` if the log cannot be written; a
    trainer that cannot start is a FAILED end, not an exception.
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
    with LogFile(log_path, max_bytes=max_log_bytes) as log:
        log.write(f"==== openamt {_utc_now()}: starting {shlex.join(argv)} ====\n")
        try:
            process = _start(argv, cwd=cwd, env=env, grace_period_s=grace_period_s,
                             supervisors=supervisors)  # fmt: skip
        except OSError as error:
            end = not_started(error, cwd=cwd, duration_s=time.monotonic() - started)
        else:
            end = _Supervision(
                process=process,
                log=log,
                metric_definitions=metric_definitions,
                on_metric=on_metric,
                on_tick=on_tick,
                grace_period_s=grace_period_s,
                started=started,
            ).run(
                objective_metric_name=objective_metric_name,
                max_runtime_s=max_runtime_s,
                stop_requested=stop_requested,
            )
        log.write(f"==== openamt {_utc_now()}: {summary(end)} ====\n")
    if log.error is not None:
        raise TrialError(f"could not write the trial log {log_path}: {log.error}") from log.error
    return end


def _start(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    grace_period_s: float,
    supervisors: SupervisorPool | None,
) -> subprocess.Popen[bytes]:
    """The trainer's supervisor, running `argv` in `cwd` with exactly `env`."""
    if supervisors is not None and sys.platform.startswith("linux"):
        return supervisors.launch(argv, cwd=cwd, env=env, grace_period_s=grace_period_s)
    return subprocess.Popen(
        supervised_argv(argv, grace_period_s=grace_period_s),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )


class _Supervision:
    """Watches one running supervisor, stops it when asked, and classifies how it ended."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        log: LogFile,
        metric_definitions: Sequence[MetricDefinition],
        on_metric: OnMetric | None,
        on_tick: Callable[[], None] | None,
        grace_period_s: float,
        started: float,
    ) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.definitions = metric_definitions
        self.on_tick = on_tick
        self.grace_period_s = grace_period_s
        self.started = started
        self.matches: Matches = queue.SimpleQueue()
        self.pumps = [
            StreamPump(
                stream=stream, name=name, log=log, definitions=metric_definitions, out=self.matches
            )  # fmt: skip
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
        ]
        self.tracker = MetricTracker(on_metric=on_metric)
        self.signals_sent: list[signal.Signals] = []

    def run(
        self,
        *,
        objective_metric_name: str,
        max_runtime_s: float | None,
        stop_requested: Callable[[], StopRequest | None] | None,
    ) -> TrialEnd:
        for pump in self.pumps:
            pump.start()
        oom_kills_before = oom_kill_count()
        ending, request = Ending.EXITED, None
        try:
            deadline = None if max_runtime_s is None else self.started + max_runtime_s
            ending, request = self._watch(deadline=deadline, stop_requested=stop_requested)
            if ending is not Ending.EXITED:
                self.tracker.live = False
                self._stop()
        finally:
            # Whatever happened above (an exception from on_metric included), nothing survives.
            self._kill()
            for pump in self.pumps:
                pump.join(timeout=_PIPE_DRAIN_TIMEOUT_S)
        self.tracker.record_all(self.matches)
        for pump in self.pumps:
            if pump.error is not None:
                raise TrialError(f"reading the trainer's {pump.name} failed: {pump.error}")
        seen = ProcessEnd(
            ending=ending,
            returncode=self.process.returncode,
            signals_sent=tuple(self.signals_sent),
            last_metrics=dict(self.tracker.last),
            objective_reports=self.tracker.counts.get(objective_metric_name, 0),
            stderr_tail=self.pumps[1].tail(),
            stdout_tail=self.pumps[0].tail(),
            duration_s=time.monotonic() - self.started,
            stop_reason=request.reason if request else None,
            stop_cause=request.cause if request else ProcessEnd.stop_cause,
            oom_kills=oom_kill_count() - oom_kills_before,
        )
        return classify(
            seen,
            objective_metric_name=objective_metric_name,
            objective_regex=_find(self.definitions, objective_metric_name).regex,
            max_runtime_s=max_runtime_s,
            grace_period_s=self.grace_period_s,
        )

    def _watch(
        self,
        *,
        deadline: float | None,
        stop_requested: Callable[[], StopRequest | None] | None,
    ) -> tuple[Ending, StopRequest | None]:
        """Passes metrics on until the trainer exits, its time is up, or a stop is requested.
        Each pump posts an empty batch when its pipe closes (see `StreamPump`)."""
        fast_until = -math.inf
        while True:
            now = time.monotonic()
            wait_s = _EXITING_POLL_INTERVAL_S if now < fast_until else _POLL_INTERVAL_S
            if deadline is not None:
                wait_s = max(0.0, min(wait_s, deadline - time.monotonic()))
            with contextlib.suppress(queue.Empty):
                batch = self.matches.get(timeout=wait_s)
                if not batch[1]:
                    fast_until = time.monotonic() + _EXITING_POLL_FOR_S
                self.tracker.record(batch)
            self.tracker.record_all(self.matches)
            if self.on_tick is not None:
                self.on_tick()
            if self._exited():
                return Ending.EXITED, None
            request = stop_requested() if stop_requested is not None else None
            if request is not None:
                return Ending.STOPPED, request
            if deadline is not None and time.monotonic() >= deadline:
                return Ending.TIMED_OUT, None

    def _exited(self) -> bool:
        """True once the supervisor has exited, without reaping it: while the zombie exists its
        pid cannot be reused, so signalling it afterwards cannot hit a stranger."""
        try:
            info = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0

    def _stop(self) -> None:
        """SIGTERM: the supervisor passes it on and SIGKILLs the tree after the grace period."""
        self._send(signal.SIGTERM)
        give_up = time.monotonic() + self.grace_period_s + _SUPERVISOR_SLACK_S
        while not self._exited() and time.monotonic() < give_up:
            time.sleep(_POLL_INTERVAL_S)

    def _kill(self) -> None:
        """Make sure the supervisor and everything under it are gone, then reap it."""
        if not self._exited():
            self._send(signal.SIGUSR2)  # as if its parent had died: it kills its tree first
            give_up = time.monotonic() + _SUPERVISOR_SLACK_S
            while not self._exited() and time.monotonic() < give_up:
                time.sleep(_POLL_INTERVAL_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # an unresponsive supervisor, at last
        self.process.wait()

    def _send(self, sig: signal.Signals) -> None:
        try:
            os.kill(self.process.pid, sig)
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
