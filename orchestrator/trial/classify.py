"""How a trainer process ended, mapped onto SageMaker's statuses with a reason a person can act on.

A trainer that exits non-zero or prints no objective failed by itself: `Failed`, not retried. A
trainer killed by a signal openamt did not send was ended from outside (the OOM killer, a node
shutting down): retryable. A stop openamt asked for is `Stopped`, with the last objective.
"""

from __future__ import annotations

import enum
import math
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.trial.outcome import EndCause, TrialEnd, TrialState

# Signals that come from outside the trainer (another process, the kernel's OOM killer, a node
# shutting down): the same hyperparameters can succeed on a retry. A crash signal (SIGSEGV,
# SIGABRT, ...) comes from the trainer's own code and would happen again.
_EXTERNAL_SIGNALS = frozenset(
    {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
)


# What PyTorch (and MXNet, and the CUDA runtime) print when a device allocation fails.
_GPU_OUT_OF_MEMORY = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA_ERROR_OUT_OF_MEMORY")


def oom_kill_count() -> int:
    """How many processes the kernel's OOM killer has killed on this node (cgroup limits
    included), or 0 where the kernel does not say (`oom_kill` in /proc/vmstat, Linux 4.13+)."""
    try:
        with open("/proc/vmstat", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Ending(enum.Enum):
    """Why supervision ended."""

    EXITED = "exited"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ProcessEnd:
    """What supervision saw: how it ended, the exit status, what was sent, what was printed."""

    ending: Ending
    returncode: int
    signals_sent: tuple[signal.Signals, ...]
    last_metrics: Mapping[str, float]
    objective_reports: int
    stderr_tail: str
    stdout_tail: str
    duration_s: float
    stop_reason: str | None = None
    stop_cause: EndCause = EndCause.TUNER
    oom_kills: int = 0  # the kernel's out-of-memory kills on this node while it ran


def classify(
    seen: ProcessEnd,
    *,
    objective_metric_name: str,
    objective_regex: str,
    max_runtime_s: float | None,
    grace_period_s: float,
) -> TrialEnd:
    """The `TrialEnd` of one supervised trainer run."""
    returncode = seen.returncode
    exit_code = returncode if returncode >= 0 else None
    killed_by = signal.Signals(-returncode) if returncode < 0 else None
    objective = seen.last_metrics.get(objective_metric_name)

    def end(state: TrialState, reason: str | None, *, cause: EndCause) -> TrialEnd:
        # A failed trial has no objective (SageMaker reports none); its metrics keep the values.
        scored = state is not TrialState.FAILED and objective is not None
        return TrialEnd(
            state=state,
            objective=objective if scored and math.isfinite(objective) else None,
            reason=reason,
            cause=cause,
            exit_code=exit_code,
            signal=killed_by.name if killed_by is not None else None,
            duration_s=seen.duration_s,
            epochs=seen.objective_reports,
            metrics=dict(seen.last_metrics),
        )

    escalated = seen.ending is not Ending.EXITED and killed_by is signal.SIGKILL
    escalation = f" (killed with SIGKILL after grace_period_s={grace_period_s:g})"
    if seen.ending is Ending.TIMED_OUT:
        reason = f"exceeded max_runtime_in_seconds={max_runtime_s:g}"
        return end(
            TrialState.FAILED, reason + (escalation if escalated else ""), cause=EndCause.TRAINER
        )
    if seen.ending is Ending.STOPPED:
        reason = (seen.stop_reason or "stopped on request") + (escalation if escalated else "")
        return end(TrialState.STOPPED, reason, cause=seen.stop_cause)
    tails = _tails(seen.stderr_tail, seen.stdout_tail)
    if killed_by is signal.SIGKILL and seen.oom_kills > 0:
        reason = (
            "trainer was killed by the kernel's out-of-memory killer (the node's OOM kill count "
            f"rose by {seen.oom_kills} while it ran): it needed more memory than it had"
        )
        return end(TrialState.FAILED, reason + tails, cause=EndCause.EXTERNAL)
    if killed_by is not None:
        external = killed_by in _EXTERNAL_SIGNALS
        reason = f"trainer was killed by signal {killed_by.name}, which openamt did not send" + (
            " (the OOM killer or something outside the trial)" if external else ""
        )
        cause = EndCause.EXTERNAL if external else EndCause.TRAINER
        return end(TrialState.FAILED, reason + tails, cause=cause)
    if returncode != 0:
        gpu = "out of GPU memory: " if _GPU_OUT_OF_MEMORY.search(seen.stderr_tail) else ""
        reason = f"{gpu}trainer exited with code {returncode}{tails}"
        return end(TrialState.FAILED, reason, cause=EndCause.TRAINER)
    if objective is None:
        reason = (
            f"objective metric {objective_metric_name!r} never matched its regex "
            f"{objective_regex!r} in the trainer's output"
        )
        return end(TrialState.FAILED, reason, cause=EndCause.TRAINER)
    if not math.isfinite(objective):
        reason = (
            f"objective metric {objective_metric_name!r} ended at {objective!r}, "
            "which is not a finite number"
        )
        return end(TrialState.FAILED, reason, cause=EndCause.TRAINER)
    return end(TrialState.COMPLETED, None, cause=EndCause.TRAINER)


def not_started(error: OSError, *, cwd: Path, duration_s: float) -> TrialEnd:
    """The end of a trainer that could not even be started (a bad interpreter path, ...)."""
    return TrialEnd(
        state=TrialState.FAILED,
        objective=None,
        reason=f"could not start the trainer in {str(cwd)!r}: {error}",
        cause=EndCause.TRAINER,
        duration_s=duration_s,
    )


def summary(end: TrialEnd) -> str:
    """One line for the log footer: state, the reason's first line, duration."""
    first_line = (end.reason or "").split("\n", 1)[0]
    duration = f" after {end.duration_s:.1f}s" if end.duration_s is not None else ""
    return f"{end.state.value}" + (f": {first_line}" if first_line else "") + duration


def _tails(stderr_tail: str, stdout_tail: str) -> str:
    if stderr_tail:
        return f"; last lines of stderr:\n{stderr_tail}"
    if stdout_tail:
        return f"; stderr was empty; last lines of stdout:\n{stdout_tail}"
    return "; the trainer printed nothing"
