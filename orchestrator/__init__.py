"""openamt orchestrator: job specs, trials on Ray Tune, the ledger, metrics, the CLI and the
SageMaker-style Python API (`from orchestrator import ScriptTrainer, HyperparameterTuner`).

Ray is imported only by the modules that talk to it (`tune_runner`, `ray_adapter`,
`trainable`); the API names below load on first use, so `import orchestrator.store.ledger` stays light.
"""

from __future__ import annotations

from typing import Any

_API_NAMES = ("ScriptTrainer", "FunctionTrainer", "HyperparameterTuner")
__all__ = [*_API_NAMES, "HyperparameterTuningJobAnalytics"]


def __getattr__(name: str) -> Any:
    if name in _API_NAMES:
        from orchestrator.api import tuner as api

        return getattr(api, name)
    if name == "HyperparameterTuningJobAnalytics":
        from orchestrator.store.analytics import HyperparameterTuningJobAnalytics

        return HyperparameterTuningJobAnalytics
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
