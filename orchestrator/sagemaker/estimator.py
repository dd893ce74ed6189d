"""SageMaker's `Estimator` (and the `Framework` base of `MXNet` and `PyTorch`) on openamt.

Constructors take the SDK v2's arguments in its order with its defaults; each argument is
applied, recorded or refused (`orchestrator.sagemaker.compat`). `fit(inputs)` runs one training
job with the estimator's hyperparameters: a one-trial job directory named after the job in the
output path, its log streamed while `wait=True`, `model_data` pointing at its model directory
(`orchestrator.sagemaker.estimator_base`). A `HyperparameterTuner` runs the same estimator as
many trials.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.sagemaker.estimator_base import EstimatorBase, constructor_arguments
from orchestrator.sagemaker.session import Session

__all__ = ["Estimator", "EstimatorBase", "Framework"]


class Estimator(EstimatorBase):
    """SageMaker's generic `Estimator`: `image_uri` first, as in the SDK. openamt runs the
    `entry_point` script (script mode) in `OPENAMT_PYTHON`; the image is recorded."""

    def __init__(
        self,
        image_uri: str,
        role: str | None = None,
        instance_count: int | None = None,
        instance_type: str | None = None,
        keep_alive_period_in_seconds: int | None = None,
        volume_size: int = 30,
        volume_kms_key: str | None = None,
        max_run: int = 24 * 60 * 60,
        input_mode: str = "File",
        output_path: str | None = None,
        output_kms_key: str | None = None,
        base_job_name: str | None = None,
        sagemaker_session: Session | None = None,
        hyperparameters: dict[str, Any] | None = None,
        tags: list[dict[str, str]] | None = None,
        subnets: list[str] | None = None,
        security_group_ids: list[str] | None = None,
        model_uri: str | None = None,
        model_channel_name: str = "model",
        metric_definitions: list[dict[str, str]] | None = None,
        encrypt_inter_container_traffic: bool | None = None,
        use_spot_instances: bool = False,
        max_wait: int | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        enable_network_isolation: bool | None = None,
        rules: list[Any] | None = None,
        debugger_hook_config: Any = None,
        tensorboard_output_config: Any = None,
        enable_sagemaker_metrics: bool | None = None,
        profiler_config: Any = None,
        disable_profiler: bool = False,
        environment: dict[str, str] | None = None,
        max_retry_attempts: int | None = None,
        source_dir: str | None = None,
        git_config: dict[str, str] | None = None,
        container_log_level: int = logging.INFO,
        code_location: str | None = None,
        entry_point: str | None = None,
        dependencies: list[str] | None = None,
        instance_groups: list[Any] | None = None,
        training_repository_access_mode: str | None = None,
        training_repository_credentials_provider_arn: str | None = None,
        container_entry_point: list[str] | None = None,
        container_arguments: list[str] | None = None,
        disable_output_compression: bool = False,
        enable_infra_check: bool | None = None,
        enable_remote_debug: bool | None = None,
        enable_session_tag_chaining: bool | None = None,
        training_plan: str | None = None,
        instance_placement_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        arguments = constructor_arguments(locals())
        self._configure({**arguments, **getattr(self, "_class_arguments", {})}, kwargs)

    def training_image_uri(self) -> str:
        return str(self._arguments["image_uri"])


class Framework(EstimatorBase):
    """SageMaker's `Framework` estimator: `entry_point` first; the framework's environment is
    `OPENAMT_<FRAMEWORK>_PYTHON` (see `orchestrator.sagemaker.training`)."""

    def __init__(
        self,
        entry_point: str,
        source_dir: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        container_log_level: int = logging.INFO,
        code_location: str | None = None,
        image_uri: str | None = None,
        dependencies: list[str] | None = None,
        enable_network_isolation: bool | None = None,
        git_config: dict[str, str] | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        enable_sagemaker_metrics: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self._class_arguments = {**getattr(self, "_class_arguments", {}), "image_uri": image_uri}
        super().__init__(
            entry_point=entry_point,
            source_dir=source_dir,
            hyperparameters=hyperparameters,
            container_log_level=container_log_level,
            code_location=code_location,
            dependencies=dependencies,
            enable_network_isolation=enable_network_isolation,
            git_config=git_config,
            checkpoint_s3_uri=checkpoint_s3_uri,
            checkpoint_local_path=checkpoint_local_path,
            enable_sagemaker_metrics=enable_sagemaker_metrics,
            **kwargs,
        )

    def training_image_uri(self) -> str | None:
        return self._arguments.get("image_uri")
