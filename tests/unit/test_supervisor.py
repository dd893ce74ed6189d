"""The trial supervisor: nothing a trainer starts outlives the trial, on any path.

Each test's processes carry a unique marker in their environment; "gone" means that no process
on the machine carries it any more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.trial.process import supervised_argv

# A bash wrapper, as many trainers are started: it launches a helper that double-forks and
# calls setsid (so it leaves the trainer's group and is re-parented), then runs the trainer.
WRAPPER = textwrap.dedent(
    """\
    #!/bin/bash
    ( setsid sleep 600 & )
    exec "$@"
    """
)

# Starts a supervised trainer, prints its own pid, then waits forever (a Ray worker stand-in).
WORKER = textwrap.dedent(
    """\
    import subprocess, sys, time
    from orchestrator.trial.process import supervised_argv
    subprocess.Popen(supervised_argv(sys.argv[1:], grace_period_s=30.0), start_new_session=True)
    time.sleep(600)
    """
)


def marked(marker: str) -> list[int]:
    """Pids of living processes whose environment carries `marker`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"OPENAMT_TEST_MARKER={marker}".encode() in environ.split(b"\0") and state != "Z":
            pids.append(int(entry))
    return pids


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> str:
    value = uuid.uuid4().hex
    monkeypatch.setenv("OPENAMT_TEST_MARKER", value)
    return value


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    path = tmp_path / "run.sh"
    path.write_text(WRAPPER)
    path.chmod(0o755)
    return path


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run(argv: list[str], *, grace_s: float = 30.0, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        supervised_argv(argv, grace_period_s=grace_s),
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=60,
        **kwargs,
    )


def test_what_a_wrapper_left_behind_ends_with_the_trainer(marker: str, wrapper: Path) -> None:
    completed = run([str(wrapper), sys.executable, "-c", "print('trained')"])
    assert completed.returncode == 0 and completed.stdout == "trained\n"
    assert wait_until(lambda: not marked(marker)), marked(marker)


def sigkill_a_worker_and_expect_nothing_left(
    marker: str, wrapper: Path, *, preexec_fn: Callable[[], None] | None = None
) -> None:
    """Start a supervised wrapped trainer from a worker stand-in, SIGKILL the worker, and
    expect every process of the tree gone within 10 s."""
    repo = Path(__file__).resolve().parents[2]
    trainer = [str(wrapper), sys.executable, "-c", "import time; time.sleep(600)"]
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, *trainer], cwd=repo, preexec_fn=preexec_fn
    )
    try:
        # the worker, the supervisor, the trainer and the setsid helper
        assert wait_until(lambda: len(marked(marker)) >= 4, timeout_s=30), marked(marker)
        worker.kill()
        worker.wait()
        assert wait_until(lambda: not marked(marker), timeout_s=10), marked(marker)
    finally:
        worker.kill()
        worker.wait()


def test_everything_ends_within_seconds_when_the_worker_is_sigkilled(
    marker: str, wrapper: Path
) -> None:
    sigkill_a_worker_and_expect_nothing_left(marker, wrapper)


def test_a_stop_reaches_every_descendant_and_the_trainer_may_finish(
    marker: str, wrapper: Path, tmp_path: Path
) -> None:
    done = tmp_path / "saved"
    trainer = python(
        f"""
        import signal, sys, time
        def save(*_):
            open({str(done)!r}, "w").write("checkpoint")
            sys.exit(0)
        signal.signal(signal.SIGTERM, save)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    process = subprocess.Popen(
        supervised_argv([str(wrapper), *trainer], grace_period_s=30.0),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout.readline() == "ready\n"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10  # it exited when the trainer did, not after 30 s
    assert done.read_text() == "checkpoint"
    assert wait_until(lambda: not marked(marker)), marked(marker)


def test_a_trainer_that_ignores_sigterm_is_killed_after_the_grace_period(marker: str) -> None:
    trainer = python(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    process = subprocess.Popen(
        supervised_argv(trainer, grace_period_s=1.0),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout.readline() == "ready\n"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == -signal.SIGKILL
    assert 0.9 <= time.monotonic() - started < 10
    assert wait_until(lambda: not marked(marker))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import sys; sys.exit(3)", 3),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", -signal.SIGSEGV),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
    ],
)
def test_the_supervisor_ends_as_the_trainer_did(code: str, expected: int) -> None:
    assert run([sys.executable, "-c", code]).returncode == expected


@pytest.mark.parametrize("program", ["no-such-trainer-3f9c", "./not-executable.py"])
def test_a_trainer_that_cannot_run_is_named(tmp_path: Path, program: str) -> None:
    (tmp_path / "not-executable.py").write_text("print('hi')\n")
    completed = run([program, "--epochs", "1"], cwd=tmp_path)
    assert completed.returncode == 127
    assert f"openamt: cannot run {program}" in completed.stderr


def test_a_supervisor_whose_parent_is_not_the_starter_never_starts_the_trainer(
    tmp_path: Path,
) -> None:
    # supervised_argv names this process as the parent; an intermediate process starts it,
    # which is what the supervisor sees when its real parent died before the signal was armed.
    ran = tmp_path / "ran"
    guarded = supervised_argv(python(f"open({str(ran)!r}, 'w').close()"), grace_period_s=1.0)
    relay = "import subprocess, sys; print(subprocess.run(sys.argv[1:]).returncode)"
    completed = subprocess.run(
        [sys.executable, "-c", relay, *guarded], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == str(-signal.SIGKILL)
    assert not ran.exists()


def test_arguments_reach_the_trainer_unchanged() -> None:
    arguments = ["--name", "two words", "--quote", 'it\'s "$HOME"', "--empty", "", "-c"]
    echo = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
    completed = run([*echo, *arguments])
    assert json.loads(completed.stdout) == arguments


def test_an_environment_without_path_still_starts_the_trainer() -> None:
    assert run([sys.executable, "-c", "print('ran')"], env={}).stdout == "ran\n"


def test_the_trainer_gets_default_signal_handling_even_if_its_starter_ignored_sigint() -> None:
    # `nohup openamt tune ... &` starts the driver with SIGINT ignored; exec keeps that.
    show = """
        import signal
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    """
    completed = run(python(show), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert completed.stdout.split() == ["True", "True"]


def block_stop_signals() -> None:
    """A runner that blocks signals (some CI runners and job schedulers do); exec keeps the mask."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR2})


def test_the_trainer_starts_with_no_signal_blocked_even_if_its_starter_blocked_some() -> None:
    show = "print(open('/proc/self/status').read().split('SigBlk:')[1].split()[0])"
    completed = run(python(show), preexec_fn=block_stop_signals)
    assert int(completed.stdout, 16) == 0


def test_a_stop_and_a_worker_death_work_even_if_the_starter_blocked_the_signals(
    marker: str, wrapper: Path
) -> None:
    trainer = python("print('ready', flush=True); import time; time.sleep(600)")
    process = subprocess.Popen(
        supervised_argv(trainer, grace_period_s=30.0),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=block_stop_signals,
    )
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == -signal.SIGTERM
    sigkill_a_worker_and_expect_nothing_left(marker, wrapper, preexec_fn=block_stop_signals)
