"""The job spec: its schema, its checks and YAML loading. No I/O beyond path checks.

A job burns GPU-hours, so the whole spec is validated before any trial starts and every problem
is reported at once, each naming the field, the value and the rule (`SpecError`).
"""

from orchestrator.spec.checks import check_resources
from orchestrator.spec.enums import CompleteOnConvergence, EarlyStoppingType, WarmStartType
from orchestrator.spec.loading import load_job_spec, parse_yaml
from orchestrator.spec.sample_log import validate_sample_log
from orchestrator.spec.schema import MAX_NAME_CHARS, JobSpec
from orchestrator.spec.sections import MetricDefinition, ResourcesPerTrial, TrainerSpec
from search import ObjectiveType, Strategy

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
