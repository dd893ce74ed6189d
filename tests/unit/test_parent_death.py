"""The parent-death launcher: a trainer dies with the process that started it, with either
launcher (setpriv plus a shell check, or the Python fallback), and a trainer whose parent is
already gone never runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from orchestrator.trial.parent_death import _working_setpriv, guard_with_parent_death

LAUNCHERS = ["setpriv", "python"]

# Starts a guarded trainer that records its pid and sleeps, prints the pid, then waits forever.
STARTER = """
import json, subprocess, sys, time
from orchestrator.trial.parent_death import guard_with_parent_death
marker, launcher = sys.argv[1], sys.argv[2]
trainer = [sys.executable, "-c", "import os, pathlib, sys, time; "
           "pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(120)", marker]
subprocess.Popen(guard_with_parent_death(trainer, launcher=launcher), start_new_session=True)
time.sleep(120)
"""


def wait_until(condition, timeout_s: float = 15.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_setpriv_is_what_this_machine_uses() -> None:
    # The project's machines have util-linux's setpriv; if this fails every trial pays ~25 ms.
    setpriv = _working_setpriv()
    assert setpriv is not None and Path(setpriv).is_absolute()
    assert guard_with_parent_death(["train"])[0] == setpriv


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_the_trainer_dies_with_its_parent(tmp_path: Path, launcher: str) -> None:
    marker = tmp_path / "pid"
    repo = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", STARTER, str(marker), launcher], cwd=repo)
    try:
        assert wait_until(lambda: marker.exists() and marker.read_text().strip().isdigit())
        trainer_pid = int(marker.read_text())
        assert not is_gone(trainer_pid)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: is_gone(trainer_pid), timeout_s=5)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_trainer_whose_parent_is_not_the_starter_never_runs(
    tmp_path: Path, launcher: str
) -> None:
    # The guard names this process as the parent; an intermediate process starts it instead,
    # which is what the launcher sees when its real parent died before the signal was armed.
    marker = tmp_path / "ran"
    trainer = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    guarded = guard_with_parent_death(trainer, launcher=launcher)
    relay = "import subprocess, sys; print(subprocess.run(sys.argv[1:]).returncode)"
    completed = subprocess.run(
        [sys.executable, "-c", relay, *guarded], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "-9"
    assert not marker.exists()


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("program", ["no-such-trainer-3f9c", "./not-executable.py"])
def test_a_trainer_that_cannot_run_is_named(tmp_path: Path, launcher: str, program: str) -> None:
    (tmp_path / "not-executable.py").write_text("print('hi')\n")
    completed = subprocess.run(
        guard_with_parent_death([program, "--epochs", "1"], launcher=launcher),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 127
    assert f"openamt: cannot run {program}" in completed.stderr


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_arguments_reach_the_trainer_unchanged(launcher: str) -> None:
    arguments = ["--name", "two words", "--quote", 'it\'s "$HOME"', "--empty", "", "-c"]
    echo = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
    completed = subprocess.run(
        guard_with_parent_death([*echo, *arguments], launcher=launcher),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(completed.stdout) == arguments


def test_an_unknown_launcher_is_refused() -> None:
    with pytest.raises(ValueError, match="launcher='sudo'"):
        guard_with_parent_death(["train"], launcher="sudo")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_an_environment_without_path_still_starts_the_trainer(launcher: str) -> None:
    trainer = [sys.executable, "-c", "print('ran')"]
    completed = subprocess.run(
        guard_with_parent_death(trainer, launcher=launcher),
        env={},
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout == "ran\n"
