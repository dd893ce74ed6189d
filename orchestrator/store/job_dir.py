"""The job directory: where a job's spec, ledger, searcher state and trial files live.

This module is the only code that spells a file name of the job directory. Layout
(`output_path/name/`)::

    spec.yaml              the validated job spec, written by the driver; a rerun must match it
    job.yaml               the job file `HyperparameterTuner.fit` writes before a driver starts
    ledger.jsonl           every trial event (see `orchestrator.store.ledger`)
    searcher_state.json    the searcher's `state_dict`, replaced atomically after each change
    trials/<trial_id>/     log.txt, hyperparameters.json, model/, output/
    driver.log, driver.pid the output and pid of a detached driver (`fit(wait=False)`)
    .lock                  held (flock) by the driver running the job; holds its pid
    ray/                   Ray Tune's own experiment files (not needed to resume)
    report.html            written by `openamt report`

Only one driver may own a job directory at a time; `lock()` enforces it with `flock`, which the
kernel releases when the driver dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import OpenAMTError

SPEC_FILE = "spec.yaml"
JOB_FILE = "job.yaml"
LEDGER_FILE = "ledger.jsonl"
SEARCHER_STATE_FILE = "searcher_state.json"
DRIVER_LOG = "driver.log"
DRIVER_PID_FILE = "driver.pid"
LOCK_FILE = ".lock"
REPORT_FILE = "report.html"
TRIALS_DIR = "trials"
RAY_DIR = "ray"


class JobDirBusyError(OpenAMTError):
    """Another driver is running this job."""


def _file(name: str) -> property:
    """A read-only attribute: the path of `name` inside the object's `directory`."""
    return property(lambda self: self.directory / name, doc=f"`{name}` in this directory")


@dataclass(frozen=True)
class TrialFiles:
    """The files of one trial: its log, hyperparameters, model and output directories."""

    directory: Path
    log = _file("log.txt")
    hyperparameters = _file("hyperparameters.json")
    model_dir = _file("model")
    output_dir = _file("output")


class JobDir:
    """Paths and durable writes for one job directory."""

    def __init__(self, *, path: Path) -> None:
        self.path = Path(path)

    @property
    def directory(self) -> Path:
        return self.path

    spec_path = _file(SPEC_FILE)
    job_file = _file(JOB_FILE)
    ledger_path = _file(LEDGER_FILE)
    searcher_state_path = _file(SEARCHER_STATE_FILE)
    driver_log = _file(DRIVER_LOG)
    driver_pid_file = _file(DRIVER_PID_FILE)
    lock_file = _file(LOCK_FILE)
    report_path = _file(REPORT_FILE)
    ray_storage = _file(RAY_DIR)

    def trial_files(self, trial_id: str) -> TrialFiles:
        return TrialFiles(directory=self.path / TRIALS_DIR / trial_id)

    def is_job(self) -> bool:
        """Whether this directory holds a job (a driver's spec, or a job file waiting for one)."""
        return self.spec_path.exists() or self.job_file.exists()

    def create(self) -> None:
        """Create the directory, failing clearly if the location is not writable."""
        try:
            (self.path / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise OpenAMTError(
                f"output_path: cannot write the job directory {self.path} ({error.strerror}); "
                "choose an output_path you can write to"
            ) from error

    def save_searcher_state(self, state: dict[str, Any]) -> None:
        """Replace the searcher state atomically: a crash leaves the old or the new file."""
        write_atomic(self.searcher_state_path, json.dumps(state, allow_nan=False))

    def load_searcher_state(self) -> dict[str, Any] | None:
        if not self.searcher_state_path.exists():
            return None
        return json.loads(self.searcher_state_path.read_text(encoding="utf-8"))

    def recorded_driver_pids(self) -> list[tuple[int, float]]:
        """(pid, when its file was written) from `driver.pid` and `.lock`, newest first."""
        found = []
        for path in (self.driver_pid_file, self.lock_file):
            try:
                text, written_at = path.read_text().strip(), path.stat().st_mtime
            except OSError:
                continue
            if text.isdigit():
                found.append((int(text), written_at))
        return sorted(found, key=lambda item: item[1], reverse=True)

    def record_driver_pid(self, pid: int) -> None:
        write_atomic(self.driver_pid_file, f"{pid}\n")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the job's lock for the life of the driver."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")  # noqa: SIM115 - held across the yield
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise JobDirBusyError(
                    f"job directory {self.path} is in use by another openamt driver; "
                    "wait for it to finish or stop it first"
                ) from error
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            handle.close()


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file, fsync and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)  # a half-written file must not be mistaken for state
        raise
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
