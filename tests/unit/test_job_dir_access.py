"""Who may read a job directory: its owner alone by default, the owner's group on request.

The modes are checked on what the store really creates (the directory, the ledger, the searcher
state, the lock, a trial's directories), under a permissive and a strict umask, since the
setting must hold whatever umask the user's shell has.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import OpenAMTError
from orchestrator.store.job_dir import ACCESS_VARIABLE, JobDir, make_dirs, write_atomic
from orchestrator.store.ledger import Event, Ledger


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o077], ids=["umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def a_job(root: Path) -> JobDir:
    """A job directory with what a driver writes before and while its first trial runs."""
    job_dir = JobDir(path=root / "runs" / "job")
    job_dir.create()
    with job_dir.lock():
        Ledger(job_dir=job_dir.path).append(Event.JOB_STARTED, run=1)
        job_dir.save_searcher_state({"observations": []})
        job_dir.record_driver_pid(os.getpid())
        make_dirs(job_dir.trial_files("trial-0001").directory / "attempt-1")
        write_atomic(job_dir.trial_files("trial-0001").hyperparameters, "{}")
    return job_dir


def test_a_job_directory_is_private_by_default(
    tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ACCESS_VARIABLE, raising=False)

    job_dir = a_job(tmp_path)

    trial = job_dir.trial_files("trial-0001")
    directories = [
        job_dir.path,
        job_dir.path / "trials",
        trial.directory,
        trial.directory / "attempt-1",
    ]
    files = [
        job_dir.ledger_path,
        job_dir.searcher_state_path,
        job_dir.driver_pid_file,
        job_dir.lock_file,
        trial.hyperparameters,
    ]
    assert {str(p.relative_to(job_dir.path)): mode(p) for p in directories} == {
        str(p.relative_to(job_dir.path)): 0o700 for p in directories
    }
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_group_access_lets_the_group_read_but_not_write(
    tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCESS_VARIABLE, "group")

    job_dir = a_job(tmp_path)

    trial = job_dir.trial_files("trial-0001")
    assert [mode(p) for p in (job_dir.path, job_dir.path / "trials", trial.directory)] == [
        0o750
    ] * 3
    assert [mode(p) for p in (job_dir.searcher_state_path, trial.hyperparameters)] == [0o640] * 2


def test_directories_above_the_job_directory_keep_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """output_path may be shared with other users' jobs: openamt does not lock them out of it."""
    monkeypatch.delenv(ACCESS_VARIABLE, raising=False)
    previous = os.umask(0o022)
    try:
        JobDir(path=tmp_path / "shared" / "runs" / "job").create()
    finally:
        os.umask(previous)

    assert mode(tmp_path / "shared" / "runs") == 0o755
    assert mode(tmp_path / "shared" / "runs" / "job") == 0o700


def test_a_job_directory_made_by_an_older_openamt_is_made_private_when_a_driver_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ACCESS_VARIABLE, raising=False)
    old = tmp_path / "runs" / "job"
    old.mkdir(parents=True, mode=0o755)
    os.chmod(old, 0o755)
    (old / ".lock").write_text("1\n")
    os.chmod(old / ".lock", 0o644)

    job_dir = JobDir(path=old)
    job_dir.create()
    with job_dir.lock():
        pass

    assert (mode(old), mode(old / ".lock")) == (0o700, 0o600)


def test_a_file_written_with_an_explicit_mode_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For files other programs must read (Prometheus's service discovery runs as its own user)."""
    monkeypatch.delenv(ACCESS_VARIABLE, raising=False)

    write_atomic(tmp_path / "targets.json", "[]", mode=0o644)

    assert mode(tmp_path / "targets.json") == 0o644


@pytest.mark.parametrize("value", ["public", "0755", ""])
def test_an_unknown_access_setting_is_refused_before_anything_is_written(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCESS_VARIABLE, value)

    with pytest.raises(OpenAMTError) as caught:
        JobDir(path=tmp_path / "runs" / "job").create()

    message = str(caught.value)
    assert message.startswith(f"{ACCESS_VARIABLE}={value!r}: must be 'private'")
    assert "or 'group'" in message
    assert not (tmp_path / "runs" / "job").exists()
