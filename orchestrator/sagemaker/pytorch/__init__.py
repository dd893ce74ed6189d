"""`orchestrator.sagemaker.pytorch`: SageMaker's `sagemaker.pytorch`."""

from orchestrator.sagemaker.pytorch.estimator import PyTorch

__all__ = ["PyTorch"]
