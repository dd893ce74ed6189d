"""SageMaker's `MXNet` estimator: an MXNet script run in the MXNet environment
(`OPENAMT_MXNET_PYTHON`, default `.venv-mxnet/bin/python` when the current directory has one)."""

from __future__ import annotations

from typing import Any

from orchestrator.sagemaker.estimator import Framework


class MXNet(Framework):
    """`MXNet(entry_point, framework_version, py_version, source_dir, hyperparameters,
    image_uri, distribution, **kwargs)`, as in the SDK. `framework_version` and `py_version`
    are recorded (a different installed MXNet version warns); `distribution` is refused."""

    _framework = "mxnet"
    _default_base_name = "mxnet-training"

    def __init__(
        self,
        entry_point: str,
        framework_version: str | None = None,
        py_version: str | None = None,
        source_dir: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        image_uri: str | None = None,
        distribution: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._class_arguments = {
            "framework_version": framework_version,
            "py_version": py_version,
            "distribution": distribution,
        }
        self.framework_version = framework_version
        self.py_version = py_version
        super().__init__(entry_point, source_dir, hyperparameters, image_uri=image_uri, **kwargs)
