"""The job spec: its schema, its checks and YAML loading. No I/O beyond path checks.

A job burns GPU-hours, so the whole spec is validated before any trial starts and every problem
is reported at once, each naming the field, the value and the rule (`SpecError`).
"""

from orchestrator.spec.schema import (
    MAX_NAME_CHARS,
    CompleteOnConvergence,
    EarlyStoppingType,
    JobSpec,
    MetricDefinition,
    ObjectiveType,
    ResourcesPerTrial,
    Strategy,
    TrainerSpec,
    WarmStartType,
    check_resources,
    load_job_spec,
    parse_yaml,
    validate_sample_log,
)

__all__ = [
    "MAX_NAME_CHARS",
    "CompleteOnConvergence",
    "EarlyStoppingType",
    "JobSpec",
    "MetricDefinition",
    "ObjectiveType",
    "ResourcesPerTrial",
    "Strategy",
    "TrainerSpec",
    "WarmStartType",
    "check_resources",
    "load_job_spec",
    "parse_yaml",
    "validate_sample_log",
]
