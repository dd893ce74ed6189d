"""Supervisors started one trial ahead (`SupervisorPool`): the next trial's supervisor waits,
armed, while this one runs, and a trainer it runs ends on the same paths as any other.
How a trial behaves under a pooled supervisor is tested by running every test of
test_trial_process.py both ways; these tests cover the pool itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator.trial.supervisors import SupervisorPool
from tests.helpers import REPO
from tests.unit.test_supervisor import marked, wait_until

# A Ray worker stand-in: a pool runs one trainer, which prints "ready", then the worker waits.
WORKER = textwrap.dedent(
    """\
    import os, sys, time
    from pathlib import Path
    from orchestrator.trial.supervisors import SupervisorPool
    pool = SupervisorPool()
    trainer = [sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(600)"]
    process = pool.launch(trainer, cwd=Path("."), env=dict(os.environ), grace_period_s=30.0)
    print(process.stdout.readline().decode().strip(), flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> str:
    value = uuid.uuid4().hex
    monkeypatch.setenv("OPENAMT_TEST_MARKER", value)
    return value


@pytest.fixture
def pool() -> Iterator[SupervisorPool]:
    pool = SupervisorPool()
    yield pool
    pool.close()


def spares() -> list[psutil.Process]:
    """This process's supervisors that wait for a trial."""
    return [p for p in psutil.Process().children() if "--await" in p.cmdline()]


def run(pool: SupervisorPool, argv: list[str], **kwargs: object) -> tuple[int, str, int]:
    """Launch `argv` (in /tmp, with an empty environment unless given); its supervisor's pid,
    stdout and exit status."""
    options: dict[str, object] = {"cwd": Path("/tmp"), "env": {}, "grace_period_s": 5.0}
    options.update(kwargs)
    process = pool.launch(argv, **options)  # type: ignore[arg-type]
    out, _ = process.communicate(timeout=60)
    return process.pid, out.decode(), process.returncode


def test_the_next_trial_runs_under_the_supervisor_started_during_this_one(
    pool: SupervisorPool,
) -> None:
    run(pool, [sys.executable, "-c", "pass"])
    assert wait_until(lambda: len(spares()) == 1)
    waiting = spares()[0].pid
    pid, out, status = run(pool, [sys.executable, "-c", "print('second')"])
    assert (pid, out, status) == (waiting, "second\n", 0)


def test_a_spare_killed_while_it_waits_is_replaced(pool: SupervisorPool) -> None:
    run(pool, [sys.executable, "-c", "pass"])
    assert wait_until(lambda: len(spares()) == 1)
    killed = spares()[0]
    killed.kill()
    killed.wait(timeout=10)
    pid, out, status = run(pool, [sys.executable, "-c", "print('ran')"])
    assert (out, status) == ("ran\n", 0) and pid != killed.pid


def test_the_trainer_gets_exactly_the_directory_environment_and_arguments_given(
    pool: SupervisorPool, tmp_path: Path
) -> None:
    show = "import json, os, sys; print(json.dumps([os.getcwd(), sys.argv[1:]]))"
    _, out, status = run(
        pool, [sys.executable, "-c", show, "two words", ""], cwd=tmp_path, env={"ONLY": "é"}
    )
    assert status == 0
    assert out == f'["{tmp_path}", ["two words", ""]]\n'
    _, out, _ = run(pool, ["/usr/bin/env"], env={"ONLY": "é"})
    assert out == "ONLY=é\n"


def test_a_trainer_outlives_the_short_lived_thread_that_launched_it(
    pool: SupervisorPool,
) -> None:
    # The parent-death signal follows the thread that started the supervisor: the pool's own
    # thread, not the trial's, so a trial thread that ends first does not take the trainer.
    launched: list[subprocess.Popen[bytes]] = []
    trainer = [sys.executable, "-c", "import time; time.sleep(0.5); print('done')"]
    thread = threading.Thread(
        target=lambda: launched.append(
            pool.launch(trainer, cwd=Path("/tmp"), env={}, grace_period_s=5.0)
        )
    )
    thread.start()
    thread.join()
    out, _ = launched[0].communicate(timeout=60)
    assert (out, launched[0].returncode) == (b"done\n", 0)


def test_a_working_directory_that_cannot_be_entered_raises_as_popen_would(
    pool: SupervisorPool, tmp_path: Path
) -> None:
    missing, a_file = tmp_path / "missing", tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(FileNotFoundError, match=str(missing)):
        pool.launch(["true"], cwd=missing, env={}, grace_period_s=1.0)
    with pytest.raises(NotADirectoryError, match=str(a_file)):
        pool.launch(["true"], cwd=a_file, env={}, grace_period_s=1.0)


def test_a_trainer_that_cannot_run_is_named(pool: SupervisorPool) -> None:
    _, _, status = run(pool, ["no-such-trainer-3f9c"])
    assert status == 127


def test_closing_the_pool_ends_its_spare_and_refuses_launches() -> None:
    pool = SupervisorPool()
    run(pool, [sys.executable, "-c", "pass"])
    assert wait_until(lambda: len(spares()) == 1)
    pool.close()
    assert not spares()
    with pytest.raises(RuntimeError, match="closed"):
        pool.launch(["true"], cwd=Path("/tmp"), env={}, grace_period_s=1.0)


def test_everything_the_pool_started_ends_when_its_process_is_sigkilled(marker: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        # The worker, the trainer's supervisor, the trainer and the next trial's spare.
        assert wait_until(lambda: len(marked(marker)) == 4), marked(marker)
        worker.kill()
        worker.wait()
        assert wait_until(lambda: not marked(marker)), marked(marker)
    finally:
        worker.kill()
        worker.wait()
