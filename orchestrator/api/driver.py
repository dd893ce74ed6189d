"""One tuning job and the driver process running it: start it detached, wait, stop, describe.

`fit(wait=False)` (and `openamt tune --detach`) starts `python -m orchestrator.cli tune JOB_FILE
--no-progress` in its own session with its output in the job's `driver.log`, so the job outlives
the notebook; `wait()`, `stop()` and `describe()` follow it, from the tuner that started it or
from any process via `HyperparameterTuner.attach` (or `openamt stop`).

Stopping is the driver's own graceful stop: SIGTERM, which it handles like Ctrl-C (running
trials get SIGTERM, their grace period, then SIGKILL; each is recorded Stopped; the job stays
resumable), then waiting for it to exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import OpenAMTError, TunerError, TuningJobFailedError, WaitTimeoutError
from orchestrator.spec import JobSpec
from orchestrator.store.analytics import describe_job
from orchestrator.store.driver import is_alive, running_driver_pid
from orchestrator.store.job_dir import JobDir, file_mode
from orchestrator.store.ledger import Event, read_events
from orchestrator.store.view import JobView, TuningJobStatus, load_job_view
from orchestrator.trial import function as function_trial

if TYPE_CHECKING:  # the runner imports Ray and torch: seconds that `stop` or `attach` never need
    from orchestrator.tune.runner import RunOptions

POLL_INTERVAL_S = 0.5
#: How long `stop()` waits for the driver beyond the job's grace period by default.
STOP_MARGIN_S = 60.0


class TuningJob:
    """A job directory and the driver process running it (SageMaker's `latest_tuning_job`).

    The driver is known by pid: the one this object started (`fit(wait=False)`), else the pid
    in `driver.pid` (a detached driver) or `.lock` (any driver), whichever is newer. A pid
    counts as the job's driver while that process lives, started before it wrote the file, and
    the ledger's latest run has not recorded its end.
    """

    def __init__(self, *, job_dir: Path) -> None:
        self.job_dir = Path(job_dir)
        self.files = JobDir(path=self.job_dir)
        self._driver: subprocess.Popen[bytes] | None = None
        self._running_here = False

    @property
    def name(self) -> str:
        return self.job_dir.name

    def run_here(self, run: Callable[[], object]) -> None:
        """Run the job in this process (`fit(wait=True)`); this process is its driver."""
        self._running_here = True
        try:
            run()
        finally:
            self._running_here = False

    def start_driver(self, options: RunOptions, *, job_file: Path | None = None) -> None:
        """Start `openamt tune JOB_FILE` detached: own session, output to `driver.log`.
        `job_file` defaults to the `job.yaml` that `fit` writes into the job directory."""
        job_file = self.files.job_file if job_file is None else Path(job_file)
        argv = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "tune",
            str(job_file),
            "--no-progress",
            *_driver_flags(options),
        ]
        fd = os.open(self.files.driver_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, file_mode())
        with open(fd, "ab") as log:
            self._driver = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_driver_environment(),
            )
        self.files.record_driver_pid(self._driver.pid)

    def driver_pid(self) -> int | None:
        """The pid of the process running the job now, or None."""
        if self._driver is not None:
            return self._driver.pid if self._driver.poll() is None else None
        pid = running_driver_pid(self.files)
        if pid == os.getpid():  # an in-process run of this process's, over unless it is ours
            return pid if self._running_here else None
        return pid

    def driver_exit_code(self) -> int | None:
        """The exit status of the driver this object started, once it has exited; else None."""
        return None if self._driver is None else self._driver.poll()

    def refuse_if_running(self) -> None:
        if self.job_dir.exists() and (pid := self.driver_pid()) is not None:
            raise TunerError(
                f"job {self.job_dir} is being run by driver pid {pid}; attach to it "
                "(HyperparameterTuner.attach) or stop it first"
            )

    def view(self) -> JobView:
        """The job's read model, with this object's knowledge of its driver."""
        return dataclasses.replace(load_job_view(self.job_dir), driver_pid=self.driver_pid())

    def describe(self) -> dict[str, Any]:
        return describe_job(self.view())

    def best_training_job(self) -> str:
        view = self.view()
        best = view.best
        if best is None:
            raise TunerError(
                f"job {self.name}: no trial has finished with a value of "
                f"{view.objective_metric_name!r} yet ({len(view.trials)} trials started)"
            )
        return best.trial_id

    def wait(self, *, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.driver_pid() is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"job {self.name} still running after {timeout:g} s")
            time.sleep(POLL_INTERVAL_S)
        description = self.describe()
        if description["HyperParameterTuningJobStatus"] == TuningJobStatus.FAILED.value:
            raise TuningJobFailedError(
                f"job {self.name} failed: its driver ended without finishing the job. "
                f"Last lines of {self.files.driver_log}:\n{self._driver_log_tail()}"
            )
        return description

    def stop(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Stop the driver gracefully (SIGTERM) and wait for it to exit; returns `describe()`.
        `timeout` defaults to the job's `stop_grace_period_in_seconds` plus `STOP_MARGIN_S`."""
        pid = self.driver_pid()
        if pid is None:
            return self.describe()
        if pid == os.getpid():
            raise TunerError(
                f"job {self.name} runs in this process (fit(wait=True)); stop it with Ctrl-C"
            )
        if timeout is None:
            timeout = self._grace_period_s() + STOP_MARGIN_S
        self.wait_until_running(pid, timeout=timeout)
        with contextlib.suppress(ProcessLookupError):  # it may have finished meanwhile
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        # The ledger records the end before the process has exited (Ray still shutting down):
        # wait for both, so the caller may start the job again at once.
        started = time.time()
        while self.driver_pid() is not None or is_alive(pid, started_before=started):
            if time.monotonic() >= deadline:
                raise TunerError(
                    f"job {self.name}: driver pid {pid} still running {timeout:g} s after SIGTERM"
                )
            time.sleep(POLL_INTERVAL_S)
        return self.describe()

    def wait_until_running(self, pid: int, *, timeout: float) -> bool:
        """Wait until driver `pid` records its start in the ledger (True), or exits or runs out
        of time first (False). Until then a signal would kill it mid-import instead of
        stopping the job cleanly (and recording that)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = read_events(self.files.ledger_path)
            if any(e["event"] == Event.JOB_STARTED.value and e.get("pid") == pid for e in events):
                return True
            if self.driver_pid() != pid:
                return False
            time.sleep(POLL_INTERVAL_S / 5)
        return False

    def _grace_period_s(self) -> float:
        try:
            return float(self.view().spec.get("stop_grace_period_in_seconds", 0.0))
        except (OpenAMTError, TypeError, ValueError):
            return 0.0

    def driver_log_tail(self, lines: int = 20) -> str:
        """The last lines of the detached driver's output (`driver.log`)."""
        return self._driver_log_tail(lines)

    def _driver_log_tail(self, lines: int = 20) -> str:
        path = self.files.driver_log
        if not path.exists():
            return "(no driver.log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_function_job(
    spec: JobSpec, fn: function_trial.TrainerFunction, options: RunOptions
) -> None:
    """Run a function trainer's job in this process (the function cannot leave it)."""
    from orchestrator.tune.runner import run_job
    from orchestrator.tune.trainables import make_function_trainable

    launch = function_trial.FunctionLaunch(
        objective_metric_name=spec.objective_metric_name, job_dir=str(spec.job_dir)
    )
    run_job(spec, options, trainable=make_function_trainable(fn, launch=launch))


def _driver_flags(options: RunOptions) -> list[str]:
    """`RunOptions` as `openamt tune` flags (progress is always off: nobody watches it)."""
    flags: list[str] = []
    if options.address is not None:
        flags += ["--address", str(options.address)]
    if options.metrics_port is not None:
        flags += [
            "--metrics-port",
            str(options.metrics_port),
            "--metrics-host",
            options.metrics_host,
        ]
    else:
        flags.append("--no-metrics")
    if options.allow_public_metrics:
        flags.append("--metrics-public")
    if options.ray_metrics_export_port is not None:
        flags += ["--ray-metrics-export-port", str(options.ray_metrics_export_port)]
    return flags


def _driver_environment() -> dict[str, str]:
    """This environment, with this copy of openamt first on the path, so the driver runs the
    same code as the notebook even where openamt is not installed."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}
