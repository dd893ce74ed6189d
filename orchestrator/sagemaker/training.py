"""How an estimator runs on openamt: its trainer, its interpreter, how its jobs are run.

An estimator becomes a native `orchestrator.api` trainer (`ScriptTrainer`) and every job is a
native `HyperparameterTuner` job: `Estimator.fit` is a one-trial job whose objective is the
script's exit (`script_runner`), a tuning job is the tuner's. So the SDK classes add names and
meanings, never a second way to run.

The Python environment trials run in (SageMaker's framework image) comes from the
environment: `OPENAMT_MXNET_PYTHON` (default `.venv-mxnet/bin/python` in the current directory
when it exists), `OPENAMT_PYTORCH_PYTHON`, `OPENAMT_PYTHON` (the generic `Estimator`), each
defaulting to this interpreter. `OPENAMT_RAY_ADDRESS` (e.g. `auto` on a cluster's head) and
`OPENAMT_METRICS_PORT` (the Prometheus exporter; off by default, since two notebooks' jobs
would want the same port) become the run options.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.api.trainers import ScriptTrainer
from orchestrator.errors import SpecError, SpecProblem
from orchestrator.sagemaker import script_runner
from orchestrator.sagemaker.instance_types import InstanceType
from orchestrator.tune.runner import RunOptions

RUNNER = str(Path(script_runner.__file__).resolve())
ADDRESS_VARIABLE = "OPENAMT_RAY_ADDRESS"
METRICS_PORT_VARIABLE = "OPENAMT_METRICS_PORT"
#: Framework -> (the variable naming its interpreter, its distribution, a default venv).
FRAMEWORKS = {
    "mxnet": ("OPENAMT_MXNET_PYTHON", "mxnet", ".venv-mxnet/bin/python"),
    "pytorch": ("OPENAMT_PYTORCH_PYTHON", "torch", None),
    None: ("OPENAMT_PYTHON", None, None),
}


class RunnerTrainer(ScriptTrainer):
    """The script run through `script_runner` (one training job: it succeeds by exiting 0)."""

    def trainer_section(self) -> dict[str, Any]:
        section = super().trainer_section()
        section["command"] = ["python", RUNNER, self.entry_point]
        return section


def python_for(framework: str | None) -> str:
    """The interpreter trials of `framework` run in (see the module docstring)."""
    variable, _, default = FRAMEWORKS[framework]
    chosen = os.environ.get(variable)
    if chosen:
        return chosen
    if default is not None and Path(default).is_file():
        return os.path.abspath(default)
    return sys.executable


@functools.cache
def installed_version(python: str, distribution: str) -> str | None:
    """The version of `distribution` (any CUDA build of it) in `python`'s environment."""
    code = (
        "import importlib.metadata as m\n"
        "for d in m.distributions():\n"
        "    name = (d.metadata['Name'] or '').lower().replace('_', '-')\n"
        f"    if name == {distribution!r} or name.startswith({distribution + '-cu'!r}):\n"
        "        print(d.version); break\n"
    )
    try:
        found = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None


def framework_record(framework: str | None, version: str | None, python: str) -> dict[str, Any]:
    """What the job records about its framework: asked for, and found in the environment."""
    distribution = FRAMEWORKS[framework][1]
    if framework is None or distribution is None:
        return {}
    return {
        "framework": framework,
        "requested_version": version,
        "installed_version": installed_version(python, distribution),
        "python": python,
    }


def version_mismatch(record: Mapping[str, Any]) -> str | None:
    """A warning when the environment's framework is not the version asked for."""
    requested, installed = record.get("requested_version"), record.get("installed_version")
    if requested is None:
        return None
    if installed is None:
        return (
            f"framework_version={requested!r}: {record['framework']} is not installed in "
            f"{record['python']}; set {FRAMEWORKS[record['framework']][0]} to the environment "
            "trials should run in"
        )
    if installed.split(".")[:2] != str(requested).split(".")[:2]:
        return (
            f"framework_version={requested!r}: trials run {record['framework']} {installed} "
            f"({record['python']}), which may train differently"
        )
    return None


def run_options(*, show_progress: bool) -> RunOptions:
    """Run options from `OPENAMT_RAY_ADDRESS` and `OPENAMT_METRICS_PORT`."""
    port_text = os.environ.get(METRICS_PORT_VARIABLE)
    try:
        port = int(port_text) if port_text else None
    except ValueError:
        raise SpecError(
            [SpecProblem(METRICS_PORT_VARIABLE, port_text, "must be a port number")]
        ) from None
    return RunOptions(
        address=os.environ.get(ADDRESS_VARIABLE) or None,
        metrics_port=port,
        show_progress=show_progress,
    )


def static_value(value: Any) -> Any:
    """A hyperparameter value as script mode passes it: scalars as they are, anything else as
    JSON text (as SageMaker's framework estimators encode them)."""
    if isinstance(value, str | int | float | bool):
        return value
    import json

    return json.dumps(value)


def name_instance_type(error: SpecError, instance: InstanceType) -> SpecError:
    """A cluster's refusal of `resources_per_trial` told as the instance type's."""
    problems = []
    for problem in error.problems:
        if problem.field.startswith("resources_per_trial"):
            problem = SpecProblem(
                "instance_type",
                instance.name,
                f"no node of the cluster can hold one trial of {instance.name} "
                f"({instance.describe()}): {problem.rule}",
            )
        problems.append(problem)
    return SpecError(problems)
