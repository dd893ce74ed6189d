"""The Python API on the cluster head, SageMaker's names: trainers, the tuner, its jobs.

from orchestrator import ScriptTrainer, HyperparameterTuner
"""

from orchestrator.api.driver import TuningJob
from orchestrator.api.trainers import FunctionTrainer, RecordedTrainer, ScriptTrainer
from orchestrator.api.tuner import HyperparameterTuner
from orchestrator.errors import TunerError, TuningJobFailedError, WaitTimeoutError

__all__ = [
    "FunctionTrainer",
    "HyperparameterTuner",
    "RecordedTrainer",
    "ScriptTrainer",
    "TunerError",
    "TuningJob",
    "TuningJobFailedError",
    "WaitTimeoutError",
]
