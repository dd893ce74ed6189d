"""Trainers: what runs as one trial, and what each gives the job spec.

* `ScriptTrainer(entry_point, ...)`: a SageMaker script-mode script, `entry_point` relative to
  `source_dir`; with `module=True`, `entry_point` is a module run as `python -m entry_point`
  (`ScriptTrainer("models.sklearn_digits", module=True)`).
* `FunctionTrainer(fn, ...)`: a Python function `fn(hyperparameters, report)` that calls
  `report(**{metric_name: value})` once per epoch, run inside the Ray trial
  (`orchestrator.trial.function`). It runs only with `fit(wait=True)`, since a function cannot
  be handed to a detached process; `metric_definitions` may be omitted for it.
* `RecordedTrainer`: the trainer of an existing job, as its spec records it (`attach`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.trial import function as function_trial

DEFAULT_BASE_NAME = "openamt"


class Trainer:
    """What every trainer gives the job spec: static hyperparameters, resources, runtime."""

    #: Job-spec field (dotted path) -> this trainer's argument name, for error messages.
    argument_names: Mapping[str, str] = {}

    def __init__(
        self,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        max_runtime_in_seconds: float | None = None,
    ) -> None:
        self.hyperparameters = dict(hyperparameters or {})
        self.resources_per_trial = (
            None
            if resources_per_trial is None
            else {str(k).lower(): v for k, v in dict(resources_per_trial).items()}
        )
        self.max_runtime_in_seconds = max_runtime_in_seconds

    def trainer_section(self) -> dict[str, Any]:
        """The job spec's `trainer:` section."""
        raise NotImplementedError

    @property
    def base_job_name(self) -> str:
        """A job name base when the tuner is given none."""
        return DEFAULT_BASE_NAME


class ScriptTrainer(Trainer):
    """A SageMaker script-mode trainer: `python entry_point --name value ...` in `source_dir`.

    `python` is the interpreter (default: this one), a path or a name on PATH; `env` adds
    environment variables; `max_runtime_in_seconds` limits each trial (SageMaker's
    `max_run`); `resources_per_trial` is `{"cpu": 1, "gpu": 1}` (a GPU below 1 is shared).
    """

    argument_names = {
        "trainer.command[0]": "python",
        "trainer.command[1]": "entry_point",
        "trainer.command": "entry_point",
        "trainer.interpreter": "python",
        "trainer.working_dir": "source_dir",
        "trainer.env": "env",
    }

    def __init__(
        self,
        entry_point: str,
        *,
        source_dir: str | os.PathLike[str] = ".",
        python: str | os.PathLike[str] | None = None,
        module: bool = False,
        hyperparameters: Mapping[str, Any] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        max_runtime_in_seconds: float | None = None,
    ) -> None:
        super().__init__(
            hyperparameters=hyperparameters,
            resources_per_trial=resources_per_trial,
            max_runtime_in_seconds=max_runtime_in_seconds,
        )
        self.entry_point = str(entry_point)
        self.module = module
        self.source_dir = os.path.abspath(os.fspath(source_dir))
        self.python = None if python is None else _absolute_if_path(os.fspath(python))
        self.env = dict(env or {})

    def trainer_section(self) -> dict[str, Any]:
        program = ["-m", self.entry_point] if self.module else [self.entry_point]
        section: dict[str, Any] = {
            "command": ["python", *program],
            "working_dir": self.source_dir,
            "env": self.env,
        }
        if self.python is not None:
            section["interpreter"] = self.python
        return section

    @property
    def base_job_name(self) -> str:
        stem = self.entry_point.rsplit(".", 1)[-1] if self.module else Path(self.entry_point).stem
        return _name_base(stem)


class FunctionTrainer(Trainer):
    """A Python function `fn(hyperparameters: dict, report) -> None` that calls
    `report(**{metric_name: value})` once per epoch; runs in the Ray trial, `fit(wait=True)`
    only. See `orchestrator.trial.function` for how it runs and how the spec records it."""

    def __init__(
        self,
        fn: function_trial.TrainerFunction,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
    ) -> None:
        if not callable(fn):
            raise SpecError(
                [SpecProblem("fn", fn, "must be a function fn(hyperparameters, report)")]
            )
        super().__init__(
            hyperparameters=hyperparameters,
            resources_per_trial=resources_per_trial,
            max_runtime_in_seconds=None,
        )
        self.fn = fn

    def trainer_section(self) -> dict[str, Any]:
        return function_trial.trainer_section(self.fn, working_dir=os.getcwd())

    @property
    def base_job_name(self) -> str:
        return _name_base(getattr(self.fn, "__name__", ""))


class RecordedTrainer(Trainer):
    """The trainer of an existing job, as its spec records it (what `attach` gives a tuner)."""

    def __init__(self, *, section: Mapping[str, Any], **settings: Any) -> None:
        """`settings` are `Trainer`'s: hyperparameters, resources_per_trial, max runtime."""
        super().__init__(**settings)
        self.section = dict(section)

    def trainer_section(self) -> dict[str, Any]:
        return dict(self.section)


def _absolute_if_path(program: str) -> str:
    """A path (with a separator) made absolute; a bare name is left for the PATH lookup."""
    return os.path.abspath(program) if os.sep in program or "/" in program else program


def _name_base(text: str) -> str:
    """A job-name base from free text: runs of other characters become one hyphen."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-") or DEFAULT_BASE_NAME
