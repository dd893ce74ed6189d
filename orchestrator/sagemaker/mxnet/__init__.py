"""`orchestrator.sagemaker.mxnet`: SageMaker's `sagemaker.mxnet`."""

from orchestrator.sagemaker.mxnet.estimator import MXNet

__all__ = ["MXNet"]
