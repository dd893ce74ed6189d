"""The job directory: where a job's spec, ledger, searcher state and trial files live.

Layout (`output_path/name/`)::

    spec.yaml              the validated job spec, written once; a rerun must match it
    ledger.jsonl           every trial event (see `orchestrator.store.ledger`)
    searcher_state.json    the searcher's `state_dict`, replaced atomically after each change
    trials/<trial_id>/     log.txt, hyperparameters.json, model/, output/
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
from pathlib import Path
from typing import Any

from orchestrator.errors import OpenAMTError


class JobDirBusyError(OpenAMTError):
    """Another driver is running this job."""


class JobDir:
    """Paths and durable writes for one job directory."""

    def __init__(self, *, path: Path) -> None:
        self.path = Path(path)

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def searcher_state_path(self) -> Path:
        return self.path / "searcher_state.json"

    @property
    def ray_storage(self) -> Path:
        return self.path / "ray"

    def trial_dir(self, trial_id: str) -> Path:
        return self.path / "trials" / trial_id

    def create(self) -> None:
        """Create the directory, failing clearly if the location is not writable."""
        try:
            (self.path / "trials").mkdir(parents=True, exist_ok=True)
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

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the job's lock for the life of the driver."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 - held across the yield
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
