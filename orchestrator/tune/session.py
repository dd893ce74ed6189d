"""The Ray session a job runs in, and the process-wide settings it needs while it runs.

Tune reads several switches from environment variables and logs through module loggers. The
runner sets what it needs for the length of one job and puts every variable and logger level
back afterwards, so a notebook that calls `fit(wait=True)` is left as it was.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from orchestrator.spec import JobSpec, check_resources
from orchestrator.tune.ray_metrics import publish_service_discovery

#: Tune's switches for an openamt job; `max_pending_trials` is added per job.
TUNE_ENVIRONMENT = {
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    # The ledger is the record: Tune's per-trial JSON/CSV/TensorBoard loggers and frequent
    # experiment checkpoints only cost time per trial.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_GLOBAL_CHECKPOINT_S": "300",
    # A failed trial is recorded in the ledger with its reason; Tune's traceback on the
    # terminal for the same failure only buries the progress display.
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
}
QUIET_LOGGERS = {
    # Without per-trial result files Tune's end-of-run summary has nothing to read; the
    # ledger is the summary, so its "Failed to fetch metrics" warning is noise.
    "ray.tune.analysis.experiment_analysis": logging.ERROR,
    # Tune's own experiment snapshot is not used to resume; failing to save it (a full disk)
    # is reported by openamt once, as the ledger's or state file's write error.
    "ray.tune.execution.experiment_state": logging.CRITICAL,
}


@dataclass(frozen=True)
class SessionOptions:
    """Where Ray runs: `address` None starts it embedded in this process."""

    address: str | None = None
    ray_metrics_export_port: int | None = None
    publish_ray_metrics: bool = True


@contextmanager
def process_settings(environment: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables (unless the user set them) and quiet Tune's noisy loggers
    for the block; restore both afterwards."""
    saved_env = {name: os.environ.get(name) for name in environment}
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name, value in environment.items():
        os.environ.setdefault(name, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def ray_session(options: SessionOptions) -> Iterator[None]:
    """Connect to Ray (or start it embedded) unless this process already did; disconnect after."""
    import ray

    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if options.address is None:
        kwargs["include_dashboard"] = False
        if options.ray_metrics_export_port is not None:
            kwargs["_metrics_export_port"] = options.ray_metrics_export_port
    else:
        kwargs["address"] = options.address
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**kwargs)
    discovery = None
    if started_here and options.address is None and options.publish_ray_metrics:
        discovery = publish_service_discovery()
    try:
        yield
    finally:
        if discovery is not None:
            discovery.unlink(missing_ok=True)
        if started_here:
            ray.shutdown()


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: stop, record, stay resumable."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_cluster(spec: JobSpec) -> None:
    """Refuse trials no node can hold, before any starts, with the numbers."""
    import ray

    largest: dict[str, float] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for name, amount in node.get("Resources", {}).items():
            key = name.lower()
            largest[key] = max(largest.get(key, 0.0), float(amount))
    check_resources(spec, largest)
