"""The job directory: where a job's spec, ledger, searcher state and trial files live.

This module is the only code that spells a file name of the job directory. Layout
(`output_path/name/`)::

    spec.yaml              the validated job spec, written by the driver; a rerun must match it
    job.yaml               the job file `HyperparameterTuner.fit` writes before a driver starts
    ledger.jsonl           every trial event (see `orchestrator.store.ledger`)
    searcher_state.json    the searcher's `state_dict`, replaced atomically after each change
    trials/<trial_id>/     hyperparameters.json, and per attempt attempt-<n>/ with log.txt,
                           model/, output/ and stop.json (the driver's request to stop it)
    warm_start.json        what a warm-started job took from its parents (written once)
    driver.log, driver.pid the output and pid of a detached driver (`fit(wait=False)`)
    .lock                  held (flock) by the driver running the job; holds its pid
    report.html            written by `openamt report`

Only one driver may own a job directory at a time; `lock()` enforces it with `flock`, which the
kernel releases when the driver dies, however it dies.

Trial logs, hyperparameters and models can be private, so a job directory is created for its
owner alone: directories 0700, files 0600. `OPENAMT_JOB_DIR_ACCESS=group` makes them readable by
the owner's group (0750 and 0640), for a team sharing a machine or a cluster's shared disk; set
it where the driver runs (and on every node that writes trial files). Directories above the job
directory (`output_path`) are created with the process umask, as any other directory.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
import threading
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
WARM_START_FILE = "warm_start.json"
TRIALS_DIR = "trials"
#: Who else may read a job directory: `private` (the default) or `group`.
ACCESS_VARIABLE = "OPENAMT_JOB_DIR_ACCESS"
#: The mode of a private job file; `file_mode()` is the mode the current setting gives.
FILE_MODE = 0o600


class Access(enum.Enum):
    """Who may read a job directory besides its owner, as (directory mode, file mode)."""

    PRIVATE = "private"  # nobody else: 0700 and 0600
    GROUP = "group"  # the owner's group may read: 0750 and 0640

    @property
    def modes(self) -> tuple[int, int]:
        return (0o700, 0o600) if self is Access.PRIVATE else (0o750, 0o640)


class JobDirBusyError(OpenAMTError):
    """Another driver is running this job."""


def access() -> Access:
    """The access `OPENAMT_JOB_DIR_ACCESS` asks for (read each time: a notebook may set it)."""
    text = os.environ.get(ACCESS_VARIABLE, Access.PRIVATE.value)
    for member in Access:
        if text.strip().lower() == member.value:
            return member
    raise OpenAMTError(
        f"{ACCESS_VARIABLE}={text!r}: must be 'private' (only you may read the job directory: "
        "directories 0700, files 0600) or 'group' (your group may read it too: 0750, 0640)"
    )


def dir_mode() -> int:
    """The mode of the directories of a job directory under the current setting."""
    return access().modes[0]


def file_mode() -> int:
    """The mode of the files of a job directory under the current setting."""
    return access().modes[1]


def make_dirs(path: Path) -> None:
    """Create `path` inside a job directory, and its missing parents, with `dir_mode()`."""
    path = Path(path)
    if path.is_dir():
        return
    make_dirs(path.parent)
    _make_dir(path, dir_mode())


def _make_dir(path: Path, mode: int) -> None:
    """mkdir with exactly `mode` (the umask would clear bits a group setting asks for)."""
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def _file(name: str) -> property:
    """A read-only attribute: the path of `name` inside the object's `directory`."""
    return property(lambda self: self.directory / name, doc=f"`{name}` in this directory")


@dataclass(frozen=True)
class AttemptFiles:
    """The files of one attempt of a trial: each attempt writes only its own, so a retry never
    mixes its model or log with an earlier attempt's that may still be running somewhere."""

    directory: Path
    log = _file("log.txt")
    model_dir = _file("model")
    output_dir = _file("output")
    stop_request = _file("stop.json")  # written by the driver: stop this attempt

    def create(self) -> None:
        """Create the attempt's folders and log with the job directory's modes (a trainer's
        own files then sit in folders only the job's owner can enter)."""
        for directory in (self.model_dir, self.output_dir):
            make_dirs(directory)
        os.close(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, file_mode()))


@dataclass(frozen=True)
class TrialFiles:
    """The files of one trial: its hyperparameters and one folder per attempt."""

    directory: Path
    hyperparameters = _file("hyperparameters.json")

    def attempt(self, number: int) -> AttemptFiles:
        return AttemptFiles(directory=self.directory / f"attempt-{number}")

    def attempts(self) -> list[int]:
        """The attempt numbers that have a folder, in order."""
        numbers = [
            int(path.name.removeprefix("attempt-"))
            for path in self.directory.glob("attempt-*")
            if path.name.removeprefix("attempt-").isdigit()
        ]
        return sorted(numbers)


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
    warm_start_path = _file(WARM_START_FILE)

    def trial_files(self, trial_id: str) -> TrialFiles:
        return TrialFiles(directory=self.path / TRIALS_DIR / trial_id)

    def is_job(self) -> bool:
        """Whether this directory holds a job (a driver's spec, or a job file waiting for one)."""
        return self.spec_path.exists() or self.job_file.exists()

    def create(self) -> None:
        """Create the directory, failing clearly if the location is not writable. The job
        directory gets `dir_mode()` even if it exists, so the current setting applies."""
        try:
            self._make_root()
            make_dirs(self.path / TRIALS_DIR)
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

    def _make_root(self) -> None:
        """The job directory with `dir_mode()`; its parents (output_path) with the umask."""
        mode = dir_mode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _make_dir(self.path, mode)
        if self.path.stat().st_mode & 0o777 != mode:
            os.chmod(self.path, mode)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the job's lock for the life of the driver."""
        self._make_root()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, file_mode())
        os.fchmod(fd, file_mode())  # a lock file left by an older openamt keeps its mode else
        handle = open(fd, "a+")  # noqa: SIM115 - held across the yield
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


#: Writers of one path in one process take turns; a fixed set of locks, shared by hash.
_WRITE_LOCKS = tuple(threading.Lock() for _ in range(64))


def _write_lock(path: Path) -> threading.Lock:
    return _WRITE_LOCKS[hash(path) % len(_WRITE_LOCKS)]


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` to `path` via a temporary file, fsync and rename. The file gets `mode`
    (default `file_mode()`), whatever the umask. Threads writing the same path take turns
    (they share its temporary file); other processes are kept out by the job's lock."""
    path = Path(path)
    with _write_lock(path.absolute()):
        _write_atomic(path, text, file_mode() if mode is None else mode)


def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with open(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, mode)  # a left-over temporary file keeps its old mode otherwise
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
