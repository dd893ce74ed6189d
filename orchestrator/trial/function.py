"""Run a Python function trainer as one Ray Tune trial attempt (the role `run_script_trial` has
for scripts).

A function trainer is `fn(hyperparameters: dict, report: Callable[..., None]) -> None`; it calls
`report(**{metric_name: value})` once per epoch. Each report that carries the objective becomes
one Tune report with the `epoch` key, exactly as a script's printed metric does, so early
stopping, Hyperband, the ledger and the dashboards cannot tell the two kinds apart. The attempt
ends with the same final report (`openamt_final` and the `openamt_*` outcome keys).

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

import json
import math
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

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


def make_function_trainable(
    fn: TrainerFunction, *, launch: FunctionLaunch
) -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable for `fn`: takes the planner's config
    (`trial_id`, `attempt`, `hyperparameters`), like `run_script_trial` with its launch bound."""

    def openamt_function_trial(config: dict[str, Any]) -> None:
        run_function_trial(config, fn=fn, launch=launch)

    return openamt_function_trial


def run_function_trial(
    config: dict[str, Any], *, fn: TrainerFunction, launch: FunctionLaunch
) -> None:
    """Tune entry point: run one attempt of `config["trial_id"]` and report its outcome."""
    from ray import tune

    from orchestrator.tune.trainables import EPOCH_KEY, FINAL_KEY

    trial_id: str = config["trial_id"]
    hyperparameters: dict[str, Any] = dict(config["hyperparameters"])
    trial_dir = Path(launch.job_dir) / "trials" / trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))

    with open(trial_dir / "log.txt", "a", encoding="utf-8") as log:
        recorder = _Recorder(
            log=log,
            objective_metric_name=launch.objective_metric_name,
            on_objective=lambda latest, epoch: tune.report({**latest, EPOCH_KEY: epoch}),
        )
        started = time.monotonic()
        error: Exception | None = None
        try:
            fn(hyperparameters, recorder.report)
        except Exception as raised:  # any error of the trainer's own fails the attempt
            error = raised
            log.write(traceback.format_exc())
        duration_s = time.monotonic() - started
    state, objective, reason = recorder.outcome(error)
    tune.report(
        {
            **recorder.latest,
            EPOCH_KEY: recorder.epoch,
            FINAL_KEY: True,
            "openamt_state": state,
            "openamt_objective": objective,
            "openamt_reason": reason,
            "openamt_retryable": False,
            "openamt_exit_code": None,
            "openamt_signal": None,
            "openamt_duration_s": duration_s,
            "openamt_node_id": _node_id(),
        }
    )


class _Recorder:
    """Checks and logs each `report` call; `on_objective(latest metrics, epoch)` forwards the
    ones that carry the objective (to Tune)."""

    def __init__(
        self,
        *,
        log: IO[str],
        objective_metric_name: str,
        on_objective: Callable[[dict[str, float], int], None],
    ) -> None:
        self.log = log
        self.objective_metric_name = objective_metric_name
        self.on_objective = on_objective
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
            self.on_objective(dict(self.latest), self.epoch)

    def outcome(self, error: Exception | None) -> tuple[str, float | None, str | None]:
        """(state, objective, reason) with the rules `trial_process` applies to scripts."""
        name = self.objective_metric_name
        if error is not None:
            return "Failed", None, f"trainer function raised {type(error).__name__}: {error}"
        if name not in self.latest:
            return "Failed", None, f"trainer function never reported objective metric {name!r}"
        objective = self.latest[name]
        if not math.isfinite(objective):
            return "Failed", None, f"objective metric {name!r} ended at {objective!r}"
        return "Completed", objective, None


def _metric_value(name: str, value: Any) -> float:
    if isinstance(value, str | bytes | bool):
        raise TypeError(f"report({name}={value!r}): a metric value must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"report({name}={value!r}): a metric value must be a number") from None


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


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
