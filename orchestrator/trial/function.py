"""Python function trainers: how the spec records them and what each `report` call does.

The Ray side (`orchestrator.tune.trainables.run_function_trial`) plays the role for functions
that `run_script_trial` plays for scripts.

A function trainer is `fn(hyperparameters: dict, report: Callable[..., None]) -> None`; it calls
`report(**{metric_name: value})` once per epoch. Each report that carries the objective becomes
one Tune report with the `epoch` key, exactly as a script's printed metric does, so early
stopping, Hyperband, the ledger and the dashboards cannot tell the two kinds apart. The attempt
ends with the same final report (a `TrialEnd`).

The function runs inside the Ray worker process, so Ray ships it (and whatever it closes over)
with cloudpickle: a function defined in a notebook works. For the same reason it can only run
from the process that holds the function (`HyperparameterTuner.fit(wait=True)`), never from a
job file. In the job spec a function trainer is recorded as
`[python, -m, orchestrator.trial.function, <module>:<qualified name>]`; running that command
only explains this and exits (`EXIT_NOT_RUNNABLE`), so a job file can never silently run
something else.

Each reported metric is appended to the trial's `log.txt` as `[epoch N] name=value`, and an
exception the function raises is written there with its traceback. An exception fails the
attempt (like a script's non-zero exit, it is not retried); Tune stopping the trial (early
stopping) ends the function at its next `report` call, and the trial is recorded as stopped.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

from orchestrator.trial.outcome import EndCause, StopRequest, TrialEnd, TrialState

FUNCTION_TRIAL_MODULE = "orchestrator.trial.function"
EXIT_NOT_RUNNABLE = 2


class ReportFunction(Protocol):
    """What a function trainer calls once per epoch: `report(accuracy=0.91, loss=0.3)`."""

    def __call__(self, **metrics: float) -> None: ...


TrainerFunction = Callable[[dict[str, Any], ReportFunction], None]


@dataclass(frozen=True)
class FunctionLaunch:
    """Everything job-wide a function trial attempt needs besides the function itself."""

    objective_metric_name: str
    job_dir: str


def function_reference(fn: Callable[..., Any]) -> str:
    """`module:qualified.name` of a function, the identity recorded in the job spec."""
    module = getattr(fn, "__module__", None) or "__main__"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{name}"


def trainer_section(fn: Callable[..., Any], *, working_dir: str) -> dict[str, Any]:
    """The job spec's `trainer:` section that records a function trainer (see module doc)."""
    return {
        "command": ["python", "-m", FUNCTION_TRIAL_MODULE, function_reference(fn)],
        "working_dir": working_dir,
    }


def is_function_trainer(section: Mapping[str, Any]) -> bool:
    """True for a `trainer:` section written by `trainer_section`."""
    command = list(section.get("command") or [])
    return command[1:3] == ["-m", FUNCTION_TRIAL_MODULE]


def metric_definition_for(metric_name: str) -> dict[str, str]:
    """A metric definition whose regex matches the lines this module writes to the trial log
    (the spec needs one for the objective; the values themselves come from `report`)."""
    return {"Name": metric_name, "Regex": re.escape(metric_name) + r"=(\S+)"}


#: Why a trial ends when Ray Tune's own scheduler (not openamt) ended it.
TUNE_STOPPED = StopRequest(reason="stopped by Ray Tune's scheduler")


class TrialStopped(BaseException):
    """Raised inside a function trainer's `report` call when openamt stops the trial.

    A BaseException, like KeyboardInterrupt, so a trainer's `except Exception` does not
    swallow it; the trainer's `finally` blocks still run (its graceful stop)."""

    def __init__(self, request: StopRequest) -> None:
        super().__init__(request.reason)
        self.request = request


class Recorder:
    """Checks and logs each `report` call; `on_objective(latest metrics, epoch)` forwards the
    ones that carry the objective (to Tune). A stop request (`stop_requested()`) ends the
    function at its next `report`, with `TrialStopped`."""

    def __init__(
        self,
        *,
        log: IO[str],
        objective_metric_name: str,
        on_objective: Callable[[dict[str, float], int], None],
        stop_requested: Callable[[], StopRequest | None] = lambda: None,
    ) -> None:
        self.log = log
        self.objective_metric_name = objective_metric_name
        self.on_objective = on_objective
        self.stop_requested = stop_requested
        self.latest: dict[str, float] = {}
        self.epoch = 0

    def report(self, **metrics: float) -> None:
        values = {name: _metric_value(name, value) for name, value in metrics.items()}
        if not values:
            raise TypeError("report() needs at least one metric: report(accuracy=0.91)")
        self.latest.update(values)
        reports_objective = self.objective_metric_name in values
        if reports_objective:
            self.epoch += 1
        shown = " ".join(f"{name}={value!r}" for name, value in values.items())
        self.log.write(f"[epoch {self.epoch}] {shown}\n")
        self.log.flush()
        if reports_objective:
            try:
                self.on_objective(dict(self.latest), self.epoch)
            except SystemExit:  # Ray Tune's own scheduler ended the trial during the report
                raise TrialStopped(TUNE_STOPPED) from None
        request = self.stop_requested()
        if request is not None:
            raise TrialStopped(request)

    def end(self, error: BaseException | None, *, duration_s: float) -> TrialEnd:
        """The attempt's end, by the rules `orchestrator.trial.classify` applies to scripts."""
        name = self.objective_metric_name
        objective = self.latest.get(name)
        if isinstance(error, TrialStopped):
            return TrialEnd(
                state=TrialState.STOPPED,
                objective=objective if objective is not None and math.isfinite(objective) else None,
                reason=error.request.reason,
                cause=error.request.cause,
                duration_s=duration_s,
                epochs=self.epoch,
                metrics=dict(self.latest),
            )
        reason = None
        if error is not None:
            reason = f"trainer function raised {type(error).__name__}: {error}"
        elif objective is None:
            reason = f"trainer function never reported objective metric {name!r}"
        elif not math.isfinite(objective):
            reason = f"objective metric {name!r} ended at {objective!r}"
        state = TrialState.COMPLETED if reason is None else TrialState.FAILED
        return TrialEnd(
            state=state,
            objective=objective if state is TrialState.COMPLETED else None,
            reason=reason,
            cause=EndCause.TRAINER,
            duration_s=duration_s,
            epochs=self.epoch,
            metrics=dict(self.latest),
        )


def _metric_value(name: str, value: Any) -> float:
    if isinstance(value, str | bytes | bool):
        raise TypeError(f"report({name}={value!r}): a metric value must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"report({name}={value!r}): a metric value must be a number") from None


def main(argv: list[str]) -> int:
    """What running a function trainer's recorded command does: explain, and do nothing."""
    target = argv[0] if argv else "<function>"
    sys.stderr.write(
        f"openamt: this job's trainer is the Python function {target}, which runs only inside "
        "the process that defined it: use HyperparameterTuner(FunctionTrainer(fn), ...)"
        ".fit(wait=True). A job file or `openamt tune` cannot run it.\n"
    )
    return EXIT_NOT_RUNNABLE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
