"""SageMaker script mode: a trial's command line and environment.

A training script written for SageMaker reads its hyperparameters from `--name value` arguments
and its directories, channels and hardware from `SM_*` variables. Producing exactly those lets
such a script run here unchanged; `OPENAMT_*` twins carry what SageMaker has no name for.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.errors import TrialError
from orchestrator.spec.names import HYPERPARAMETER_NAME_RULE, is_hyperparameter_name

# SageMaker's channel name rule; the name also becomes `SM_CHANNEL_<NAME>`.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Variables that describe one job: inherited ones (a worker started by another job) are dropped.
_JOB_PREFIXES = ("SM_", "OPENAMT_")
# What `extra_env` may not override: SageMaker's contract, and Ray's choice of GPUs.
_PROTECTED_PREFIX = "SM_"
_RAY_OWNED = "CUDA_VISIBLE_DEVICES"


class TrainingEnvError(TrialError, ValueError):
    """A hyperparameter, channel or setting cannot be expressed in script mode."""


def format_hyperparameter(name: str, value: object) -> str:
    """The command-line text of one value: floats round-trip exactly, bools as `True`/`False`.

    `repr` gives the shortest string that parses back to the same float, so the trainer sees the
    value the searcher chose. Bools print as Python does, which is what SageMaker passes.
    """
    value = _to_python_scalar(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise TrainingEnvError(f"hyperparameter {name!r}={value!r}: must be a finite number")
        return repr(number)
    if isinstance(value, str):
        return value
    raise TrainingEnvError(
        f"hyperparameter {name!r}={value!r}: must be a str, int, float or bool, "
        f"not {type(value).__name__}"
    )


def build_argv(command: Sequence[str], hyperparameters: Mapping[str, object]) -> list[str]:
    """`command` followed by `--name value` for each hyperparameter, names sorted as SageMaker does.

    Every name gets two dashes (SageMaker gives one-letter names a single dash); the stand-in
    trainer and argparse-based scripts that declare `--x` accept this.
    """
    if isinstance(command, str) or not command:
        raise TrainingEnvError(
            f"command={command!r}: must be a non-empty list of arguments, not a string"
        )
    return [str(part) for part in command] + _hyperparameter_args(hyperparameters)


def _hyperparameter_args(hyperparameters: Mapping[str, object]) -> list[str]:
    args: list[str] = []
    for name in sorted(hyperparameters):
        _check_hyperparameter_name(name)
        args += [f"--{name}", format_hyperparameter(name, hyperparameters[name])]
    return args


def build_training_env(
    *,
    hyperparameters: Mapping[str, object],
    channels: Mapping[str, str | Path],
    model_dir: str | Path,
    output_data_dir: str | Path,
    num_gpus: float,
    num_cpus: float,
    hosts: Sequence[str],
    current_host: str,
    base_env: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    trial_id: str | None = None,
    job_dir: str | Path | None = None,
) -> dict[str, str]:
    """The trainer's complete environment: `base_env`, then the `SM_*`/`OPENAMT_*` set, then
    `extra_env`.

    `base_env` is the worker's environment; Ray's `CUDA_VISIBLE_DEVICES` in it is kept, and any
    inherited `SM_*`/`OPENAMT_*` variables are dropped. `extra_env` (the job's variables and
    openamt's own `OPENAMT_*` ones) may not override `SM_*` or `CUDA_VISIBLE_DEVICES`.
    `trial_id` and `job_dir`, when given, become `OPENAMT_TRIAL_ID`/`OPENAMT_JOB_DIR`; the trial
    id (or `extra_env["OPENAMT_TRIAL_ID"]`) is SageMaker's `job_name`. Fractional resources
    round up in `SM_NUM_GPUS`/`SM_NUM_CPUS` (a trainer with half a GPU still sees one device);
    the exact amounts are in `OPENAMT_NUM_GPUS`/`OPENAMT_NUM_CPUS`. Paths are made absolute
    because the trainer runs in its own working directory. The caller creates the directories.
    """
    _check_resources(num_gpus=num_gpus, num_cpus=num_cpus)
    _check_hosts(hosts=hosts, current_host=current_host)
    channel_dirs = _channel_dirs(channels)
    typed_hps = _typed_hyperparameters(hyperparameters)
    model_dir, output_data_dir = Path(model_dir).absolute(), Path(output_data_dir).absolute()
    sm_num_gpus, sm_num_cpus = math.ceil(num_gpus), math.ceil(num_cpus)
    extra_env = _checked_extra_env(extra_env or {})
    if trial_id is None:
        trial_id = extra_env.get("OPENAMT_TRIAL_ID")

    training_env = {
        "channel_input_dirs": channel_dirs,
        "current_host": current_host,
        "hosts": list(hosts),
        "hyperparameters": typed_hps,
        "job_name": trial_id or "",
        "model_dir": str(model_dir),
        "output_data_dir": str(output_data_dir),
        "num_gpus": sm_num_gpus,
        "num_cpus": sm_num_cpus,
    }
    owned = {
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(output_data_dir),
        "SM_CHANNELS": json.dumps(sorted(channel_dirs)),
        "SM_HPS": json.dumps(typed_hps, sort_keys=True),
        "SM_USER_ARGS": json.dumps(_hyperparameter_args(typed_hps)),
        "SM_HOSTS": json.dumps(list(hosts)),
        "SM_CURRENT_HOST": current_host,
        "SM_NUM_GPUS": str(sm_num_gpus),
        "SM_NUM_CPUS": str(sm_num_cpus),
        "SM_TRAINING_ENV": json.dumps(training_env, sort_keys=True),
        "OPENAMT_NUM_GPUS": _format_amount(num_gpus),
        "OPENAMT_NUM_CPUS": _format_amount(num_cpus),
    }
    if trial_id:
        owned["OPENAMT_TRIAL_ID"] = trial_id
    if job_dir is not None:
        owned["OPENAMT_JOB_DIR"] = str(Path(job_dir).absolute())
    for name, path in channel_dirs.items():
        owned[f"SM_CHANNEL_{name.upper()}"] = path
    for name, value in typed_hps.items():
        owned[f"SM_HP_{name.upper()}"] = format_hyperparameter(name, value)

    env = {key: value for key, value in base_env.items() if not key.startswith(_JOB_PREFIXES)}
    # Python trainers block-buffer a pipe; metrics must arrive as they are printed.
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(owned)
    env.update(extra_env)
    return env


def _to_python_scalar(value: object) -> object:
    """NumPy scalars (from searchers) become Python ones without importing NumPy here."""
    item = getattr(value, "item", None)
    if type(value) not in (str, int, float, bool) and callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _check_hyperparameter_name(name: object) -> None:
    if not is_hyperparameter_name(name):
        raise TrainingEnvError(f"hyperparameter name {name!r}: {HYPERPARAMETER_NAME_RULE}")


def _typed_hyperparameters(hyperparameters: Mapping[str, object]) -> dict[str, object]:
    """Values as JSON-able Python scalars, each checked the way `build_argv` checks it."""
    typed: dict[str, object] = {}
    for name in sorted(hyperparameters):
        _check_hyperparameter_name(name)
        format_hyperparameter(name, hyperparameters[name])
        typed[name] = _to_python_scalar(hyperparameters[name])
    return typed


def _channel_dirs(channels: Mapping[str, str | Path]) -> dict[str, str]:
    dirs: dict[str, str] = {}
    seen_variables: dict[str, str] = {}
    for name, path in channels.items():
        if not isinstance(name, str) or not _CHANNEL_NAME.fullmatch(name):
            raise TrainingEnvError(
                f"inputs channel name {name!r}: must be 1-64 characters of letters, digits, "
                "'_', '.', '-'"
            )
        variable = f"SM_CHANNEL_{name.upper()}"
        if variable in seen_variables:
            raise TrainingEnvError(
                f"inputs channels {seen_variables[variable]!r} and {name!r}: both map to "
                f"{variable}; channel names must differ ignoring case"
            )
        seen_variables[variable] = name
        dirs[name] = str(Path(path).absolute())
    return dirs


def _check_resources(*, num_gpus: float, num_cpus: float) -> None:
    if not (isinstance(num_gpus, int | float) and math.isfinite(num_gpus) and num_gpus >= 0):
        raise TrainingEnvError(f"num_gpus={num_gpus!r}: must be a finite number >= 0")
    if not (isinstance(num_cpus, int | float) and math.isfinite(num_cpus) and num_cpus > 0):
        raise TrainingEnvError(f"num_cpus={num_cpus!r}: must be a finite number > 0")


def _check_hosts(*, hosts: Sequence[str], current_host: str) -> None:
    if isinstance(hosts, str) or not hosts:
        raise TrainingEnvError(f"hosts={hosts!r}: must be a non-empty list of host names")
    if current_host not in hosts:
        raise TrainingEnvError(
            f"current_host={current_host!r}: must be one of hosts={list(hosts)!r}"
        )


def _checked_extra_env(extra_env: Mapping[str, str]) -> dict[str, str]:
    for key, value in extra_env.items():
        if key.startswith(_PROTECTED_PREFIX) or key == _RAY_OWNED:
            raise TrainingEnvError(
                f"trainer env {key}={value!r}: SM_* and CUDA_VISIBLE_DEVICES are set by "
                "openamt and Ray and cannot be overridden"
            )
        if not isinstance(value, str):
            raise TrainingEnvError(f"trainer env {key}={value!r}: value must be a string")
    return dict(extra_env)


def _format_amount(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else repr(float(amount))
