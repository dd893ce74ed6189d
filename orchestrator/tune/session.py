"""The Ray session a job runs in, and the process-wide settings it needs while it runs.

Tune reads several switches from environment variables and logs through module loggers. The
runner sets what it needs for the length of one job and puts every variable and logger level
back afterwards, so a notebook that calls `fit(wait=True)` is left as it was.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.spec import JobSpec, check_resources
from orchestrator.tune.ray_metrics import publish_service_discovery

log = logging.getLogger(__name__)

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
    """For the block: set environment variables (unless the user set them), quiet Tune's
    noisy loggers and GPyTorch's numerical notes, and run torch on one thread (the driver's
    GP work is small; more threads only fight the trials for the cores). All restored after."""
    import torch
    from linear_operator.utils.warnings import NumericalWarning

    saved_env = {name: os.environ.get(name) for name in environment}
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    saved_threads = torch.get_num_threads()
    for name, value in environment.items():
        os.environ.setdefault(name, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=NumericalWarning)
            yield
    finally:
        torch.set_num_threads(saved_threads)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def ray_session(options: SessionOptions) -> Iterator[None]:
    """Connect to Ray (or start it embedded) unless this process already did; disconnect after.

    Embedded Ray serves this machine only: every one of its servers listens on loopback, no
    dashboard, and token authentication on, with the token file readable by its owner only."""
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
        if options.address is None:
            with _loopback_only():
                private_token_file()
                ray.init(**kwargs)
        else:
            ray.init(**kwargs)
            private_token_file(create=False)
    discovery = None
    if started_here and options.address is None and options.publish_ray_metrics:
        discovery = publish_service_discovery()
    try:
        yield
    finally:
        if discovery is not None:
            discovery.unlink(missing_ok=True)
        if started_here:
            _shutdown_without_stray_finalizers(ray)


def _shutdown_without_stray_finalizers(ray: Any) -> None:
    """`ray.shutdown()`, with no Ray handle finalised by a garbage collection in another thread
    while it runs: Ray ends the whole process when any thread calls into its core worker
    during or after the shutdown, and a collection started by any allocation (a log-following
    thread's) runs the finalisers of the finished experiment's object refs and actor handles
    in that thread. So the garbage is collected first, while Ray is up, and collections wait
    until the shutdown is over."""
    import gc

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ray.shutdown()
    finally:
        if was_enabled:
            gc.enable()


#: Ray's switch for a node that serves only this machine: its address becomes loopback, and so
#: do the addresses its servers listen on.
_LOCAL_ONLY_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Start the embedded Ray with a loopback node address. Ray reads the switch when it is
    imported (`ray_constants`) and the processes it starts read it from the environment, so
    it is set in both places while Ray starts, and put back afterwards."""
    from ray._private import ray_constants

    saved_constant, saved_env = (
        ray_constants.ENABLE_RAY_CLUSTER,
        os.environ.get(_LOCAL_ONLY_VARIABLE),
    )
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_LOCAL_ONLY_VARIABLE] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_env is None:
            os.environ.pop(_LOCAL_ONLY_VARIABLE, None)
        else:
            os.environ[_LOCAL_ONLY_VARIABLE] = saved_env


def ray_token_path() -> Path:
    """The token file Ray reads: `RAY_AUTH_TOKEN_PATH`, else ~/.ray/auth_token."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def private_token_file(*, create: bool = True) -> Path | None:
    """Make Ray's token file readable by its owner only (0600, its folder 0700); for an
    embedded Ray, create it that way first (Ray itself would leave it to the umask). A token
    given as `RAY_AUTH_TOKEN` needs no file."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = ray_token_path()
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32))
    if path.stat().st_uid == os.getuid():
        os.chmod(path, 0o600)
        if path.parent == Path.home() / ".ray":
            os.chmod(path.parent, 0o700)
    return path


@contextmanager
def stop_signals(on_signal: Callable[[str], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `on_signal(name)` for the block, whatever their disposition
    was (a driver started by `nohup ... &` or from a script's background job has SIGINT
    ignored; a runner may even block them); put the previous handlers and mask back
    afterwards. Only the main thread can do this."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        on_signal(signal.Signals(signum).name)

    stops = {signal.SIGINT, signal.SIGTERM}
    previous = {sig: signal.signal(sig, handle) for sig in stops}
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, stops) & stops  # blocked by our starter
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ClusterCapacity:
    """How many trials of the job's size the cluster can hold at once, from Ray's view of its
    nodes (each node packed on its own), refreshed every `REFRESH_S` as nodes come and go.

    The planner asks from the suggest-ahead thread too; `close()` (before Ray shuts down) waits
    for a measurement in flight and makes later calls answer from the last one, because a call
    into Ray after its shutdown ends the whole process."""

    REFRESH_S = 10.0

    def __init__(self, *, cpu: float, gpu: float) -> None:
        self.cpu, self.gpu = cpu, gpu
        self._value, self._at = 0, -math.inf
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self) -> int:
        with self._lock:
            if not self._closed and time.monotonic() - self._at >= self.REFRESH_S:
                self._value, self._at = self._measure(), time.monotonic()
            return self._value

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _measure(self) -> int:
        import ray

        total = 0
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            resources = {k.upper(): float(v) for k, v in node.get("Resources", {}).items()}
            fits = [math.floor(resources.get("CPU", 0.0) / self.cpu + 1e-9)]
            if self.gpu > 0:
                fits.append(math.floor(resources.get("GPU", 0.0) / self.gpu + 1e-9))
            total += max(0, min(fits))
        return total


def check_cluster(spec: JobSpec) -> ClusterCapacity:
    """Refuse trials no node can hold, before any starts, with the numbers; warn when the
    cluster cannot run `max_parallel_jobs` trials at once. Returns the cluster's capacity."""
    import ray

    largest: dict[str, float] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for name, amount in node.get("Resources", {}).items():
            key = name.lower()
            largest[key] = max(largest.get(key, 0.0), float(amount))
    check_resources(spec, largest)
    resources = spec.resources_per_trial
    capacity = ClusterCapacity(cpu=resources.cpu, gpu=resources.gpu)
    if capacity() < spec.max_parallel_jobs:
        log.warning(
            "max_parallel_jobs is %d, but the cluster holds %d trials of %g CPUs and %g GPUs "
            "at once: at most %d run at a time (more once nodes join)",
            spec.max_parallel_jobs, capacity(), resources.cpu, resources.gpu, capacity(),
        )  # fmt: skip
    return capacity
