"""SageMaker's `PyTorch` estimator: a PyTorch script run in `OPENAMT_PYTORCH_PYTHON` (default:
this interpreter, whose environment has torch)."""

from __future__ import annotations

from typing import Any

from orchestrator.sagemaker.estimator import Framework


class PyTorch(Framework):
    """`PyTorch(entry_point, framework_version, py_version, source_dir, hyperparameters,
    image_uri, distribution, compiler_config, training_recipe, recipe_overrides, **kwargs)`, as
    in the SDK. Versions are recorded; distribution, the compiler and recipes are refused."""

    _framework = "pytorch"
    _default_base_name = "pytorch-training"

    def __init__(
        self,
        entry_point: str | None = None,
        framework_version: str | None = None,
        py_version: str | None = None,
        source_dir: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        image_uri: str | None = None,
        distribution: dict[str, Any] | None = None,
        compiler_config: Any = None,
        training_recipe: str | None = None,
        recipe_overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._class_arguments = {
            "framework_version": framework_version,
            "py_version": py_version,
            "distribution": distribution,
            "compiler_config": compiler_config,
            "training_recipe": training_recipe,
            "recipe_overrides": recipe_overrides,
        }
        self.framework_version = framework_version
        self.py_version = py_version
        super().__init__(
            entry_point,  # type: ignore[arg-type]  # None is refused, naming entry_point
            source_dir,
            hyperparameters,
            image_uri=image_uri,
            **kwargs,
        )
