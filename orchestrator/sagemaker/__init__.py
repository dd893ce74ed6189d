"""The SageMaker Python SDK (v2) on openamt: a notebook ports by its import lines.

    import sagemaker                              from orchestrator import sagemaker
    from sagemaker.mxnet import MXNet             from orchestrator.sagemaker.mxnet import MXNet
    from sagemaker.tuner import ...               from orchestrator.sagemaker.tuner import ...

The modules mirror the SDK's (`estimator`, `mxnet`, `pytorch`, `tuner`, `parameter`, `inputs`,
`analytics`, `session`); classes take the SDK's arguments in its order with its defaults and
meanings, and build on the native API (`orchestrator.api`), so both run jobs the same way. What
maps to what, and what cannot apply on one's own cluster: orchestrator/sagemaker/README.md.
"""

from orchestrator.sagemaker import estimator, inputs, parameter, tuner
from orchestrator.sagemaker.analytics import (
    HyperparameterTuningJobAnalytics,
    TrainingJobAnalytics,
)
from orchestrator.sagemaker.inputs import TrainingInput
from orchestrator.sagemaker.session import LocalSession, Session, get_execution_role

__all__ = [
    "HyperparameterTuningJobAnalytics",
    "LocalSession",
    "Session",
    "TrainingInput",
    "TrainingJobAnalytics",
    "estimator",
    "get_execution_role",
    "inputs",
    "parameter",
    "tuner",
]
