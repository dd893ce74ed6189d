"""What becomes of each SageMaker SDK argument on one's own cluster: applied, recorded or refused.

* applied: it does what it does on SageMaker (`instance_type`, `max_run`, `hyperparameters`, ...);
* recorded: it cannot apply here and ignoring it does not change what a script computes (`role`,
  VPC settings, spot, tags, encryption, profiling, the framework image): it is accepted and
  kept in the job's spec (`recorded_settings`), shown by `describe()`;
* refused: ignoring it would change results or what runs (checkpoint syncing, Pipe mode,
  distributed training, git checkouts, container entry points): any value but its default
  stops the estimator or tuner before anything runs, naming the argument and why.

The porting guide's table (orchestrator/sagemaker/README.md) is this table; a test keeps them
the same.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import SpecError, SpecProblem


class Treatment(enum.Enum):
    APPLIED = "applied"
    RECORDED = "recorded"
    REFUSED = "refused"


@dataclass(frozen=True)
class Rule:
    treatment: Treatment
    note: str


def _rules(treatment: Treatment, notes: Mapping[str, str]) -> dict[str, Rule]:
    return {name: Rule(treatment, note) for name, note in notes.items()}


_NO_AWS = "no AWS account here"
ESTIMATOR_ARGUMENTS: dict[str, Rule] = {
    **_rules(
        Treatment.APPLIED,
        {
            "entry_point": "the script, relative to source_dir",
            "source_dir": "the directory trials run in (a local path)",
            "hyperparameters": "static hyperparameters, `--name value` and SM_HP_*",
            "instance_type": "resources per trial from the instance-type table",
            "instance_count": "1 (a trial runs on one node); more is refused",
            "max_run": "one trial's limit (default 86400 s), then SIGTERM and SIGKILL",
            "metric_definitions": "metrics scraped from the log",
            "environment": "extra environment variables of the script",
            "max_retry_attempts": "retries of trials lost to causes outside the script",
            "input_mode": "File and FastFile (the script reads files); Pipe is refused",
            "output_path": "where job directories go (s3:// in the mirror, or a path)",
            "base_job_name": "job name prefix",
            "sagemaker_session": "the default bucket, hence the default output_path",
            "model_uri": "an extra input channel (model_channel_name) with that data",
            "model_channel_name": "the channel model_uri arrives in",
            "dependencies": "added to the script's PYTHONPATH",
        },
    ),
    **_rules(
        Treatment.RECORDED,
        {
            "role": _NO_AWS,
            "image_uri": "trials run in a Python environment, not the image",
            "framework_version": "the environment's version is recorded too; a mismatch warns",
            "py_version": "the environment's Python is used",
            "tags": _NO_AWS,
            "subnets": "no VPC",
            "security_group_ids": "no VPC",
            "use_spot_instances": "no spot market: trials run on the cluster's nodes",
            "max_wait": "no spot market",
            "keep_alive_period_in_seconds": "no warm pools: Ray keeps its workers",
            "volume_size": "trials use the node's disk",
            "volume_kms_key": "no EBS volume",
            "output_kms_key": "no S3 encryption",
            "encrypt_inter_container_traffic": "one node per trial: no inter-node traffic",
            "rules": "no SageMaker Debugger",
            "debugger_hook_config": "no SageMaker Debugger",
            "tensorboard_output_config": "write TensorBoard files to SM_OUTPUT_DATA_DIR",
            "enable_sagemaker_metrics": "metrics come from the log regexes",
            "profiler_config": "no SageMaker Profiler",
            "disable_profiler": "no SageMaker Profiler",
            "container_log_level": "no framework container",
            "code_location": "the code is read from source_dir in place",
            "disable_output_compression": "the model is never compressed (a directory)",
            "enable_infra_check": "no SageMaker infrastructure",
            "enable_remote_debug": "no SageMaker remote debugging",
            "enable_session_tag_chaining": _NO_AWS,
            "training_plan": "no SageMaker capacity plans",
            "instance_placement_config": "placement is Ray's",
        },
    ),
    **_rules(
        Treatment.REFUSED,
        {
            "checkpoint_s3_uri": "no checkpoint syncing: save to SM_MODEL_DIR / SM_OUTPUT_DATA_DIR",
            "checkpoint_local_path": "no checkpoint syncing",
            "enable_network_isolation": "trials cannot be cut off the network",
            "git_config": "no git checkout: point source_dir at a checkout",
            "instance_groups": "heterogeneous clusters per trial are not supported",
            "distribution": "distributed training (several nodes per trial) is not supported",
            "container_entry_point": "no container: the entry_point script runs",
            "container_arguments": "no container",
            "training_repository_access_mode": "no private image registry",
            "training_repository_credentials_provider_arn": "no private image registry",
            "compiler_config": "no SageMaker Training Compiler",
            "training_recipe": "no SageMaker recipes",
            "recipe_overrides": "no SageMaker recipes",
        },
    ),
}

TUNER_ARGUMENTS: dict[str, Rule] = {
    "tags": Rule(Treatment.RECORDED, _NO_AWS),
    "estimator_name": Rule(Treatment.REFUSED, "one estimator per tuner (no create())"),
    "autotune": Rule(Treatment.REFUSED, "no Autotune: give hyperparameter_ranges"),
    "hyperparameters_to_keep_static": Rule(Treatment.REFUSED, "no Autotune"),
}

#: SDK v1 names the SDK v2 still accepts, with a warning.
RENAMED = {
    "train_instance_count": "instance_count",
    "train_instance_type": "instance_type",
    "train_max_run": "max_run",
    "train_use_spot_instances": "use_spot_instances",
    "train_max_wait": "max_wait",
    "train_volume_size": "volume_size",
    "train_volume_kms_key": "volume_kms_key",
}


def is_unset(value: Any) -> bool:
    """Left at its default: None, False or empty."""
    if value is None or value is False:
        return True
    return isinstance(value, list | tuple | dict | set) and not value


def recorded(arguments: Mapping[str, Any], rules: Mapping[str, Rule]) -> dict[str, Any]:
    """The recorded arguments that are set, as JSON-like values. Raises `SpecError` naming every
    refused argument that is set, and why."""
    problems = [
        SpecProblem(name, value, f"not supported on openamt: {rules[name].note}")
        for name, value in arguments.items()
        if rules[name].treatment is Treatment.REFUSED and not is_unset(value)
    ]
    if problems:
        raise SpecError(problems)
    return {
        name: json_like(value)
        for name, value in arguments.items()
        if rules[name].treatment is Treatment.RECORDED and value is not None
    }


def json_like(value: Any) -> Any:
    """`value` as JSON data: containers recursively, other objects as their repr."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(key): json_like(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((json_like(item) for item in value), key=repr)
    if isinstance(value, list | tuple):
        return [json_like(item) for item in value]
    if isinstance(value, enum.Enum):
        return json_like(value.value)
    return repr(value)
