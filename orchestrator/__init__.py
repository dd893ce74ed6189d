"""openamt orchestrator: job specs, trials on Ray Tune, the job record, metrics and the CLI.

One subpackage per concept, each concept with one owner and one type:

    spec/      the job schema, its checks, YAML loading           no I/O beyond path checks
    store/     job directory, ledger, the one read model          the only code naming its files
    trial/     one trial's process: launch, supervise, parse      no Ray
    control/   planner, suggest-ahead, stopping and completion    no Ray, I/O only through store/
    tune/      runner, Ray Tune adapter, trainables               the only code importing Ray
    monitor/   Prometheus exporter and live progress
    report/    report.html and its plots
    api/       the Python API (trainers, tuner, detached drivers)
    cli.py, errors.py

The API names below load on first use, so `import orchestrator.store.ledger` stays light:
`from orchestrator import ScriptTrainer, HyperparameterTuner`.
"""

from __future__ import annotations

from typing import Any

_API_NAMES = ("ScriptTrainer", "FunctionTrainer", "HyperparameterTuner")
__all__ = [*_API_NAMES, "HyperparameterTuningJobAnalytics"]


def __getattr__(name: str) -> Any:
    if name in _API_NAMES:
        from orchestrator import api

        return getattr(api, name)
    if name == "HyperparameterTuningJobAnalytics":
        from orchestrator.store.analytics import HyperparameterTuningJobAnalytics

        return HyperparameterTuningJobAnalytics
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
