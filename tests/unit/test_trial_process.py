"""Script-mode trial processes: outcomes, streaming, timeouts, stops and process-group cleanup.

Every test runs the real stand-in trainer (or a few lines of Python) as a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from orchestrator.errors import OpenAMTError, TrialError
from orchestrator.spec import MetricDefinition
from orchestrator.trial.outcome import EndCause, StopRequest, TrialEnd, TrialState
from orchestrator.trial.process import TrialSetupError, run_trial_process
from orchestrator.trial.script_env import build_argv
from orchestrator.trial.supervisors import SupervisorPool

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "fixtures" / "standin_trainer.py"
OBJECTIVE = "Validation-accuracy"
DEFINITIONS = [
    MetricDefinition.model_validate({"Name": OBJECTIVE, "Regex": r"validation: accuracy=(\S+)"}),
    MetricDefinition.model_validate({"Name": "train-loss", "Regex": r"train: loss=([0-9\.]+)"}),
]


def load_standin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("standin_trainer", STANDIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = load_standin()
DEFAULT_FINAL = standin.final_accuracy(x=0.5, y=0.5, opt="sgd", layers=2)


class Trial:
    """Runs the stand-in (or any argv) in a temporary trial directory and records metrics."""

    def __init__(self, tmp_path: Path, supervisors: SupervisorPool | None = None) -> None:
        self.supervisors = supervisors
        self.dir = tmp_path
        self.log_path = tmp_path / "trial" / "log.txt"
        self.model_dir = tmp_path / "model"
        self.reported: list[tuple[str, float, int]] = []

    def on_metric(self, name: str, value: float, step: int) -> None:
        self.reported.append((name, value, step))

    def run_standin(self, hyperparameters: dict[str, object], **kwargs: Any) -> TrialEnd:
        return self.run(build_argv([sys.executable, str(STANDIN)], hyperparameters), **kwargs)

    def run(self, argv: list[str], **kwargs: Any) -> TrialEnd:
        arguments: dict[str, Any] = {
            "argv": argv,
            "cwd": self.dir,
            "env": {**os.environ, "SM_MODEL_DIR": str(self.model_dir), "PYTHONUNBUFFERED": "1"},
            "log_path": self.log_path,
            "metric_definitions": DEFINITIONS,
            "objective_metric_name": OBJECTIVE,
            "on_metric": self.on_metric,
            "supervisors": self.supervisors,
        }
        arguments.update(kwargs)
        return run_trial_process(**arguments)

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def trainer_pgid(self) -> int:
        found = re.search(r"trainer pid=\d+ pgid=(\d+)", self.log)
        assert found, self.log
        return int(found.group(1))

    def grandchild_pid(self) -> int:
        found = re.search(r"spawned child pid=(\d+)", self.log)
        assert found, self.log
        return int(found.group(1))


@pytest.fixture(params=["started-for-the-trial", "started-ahead"])
def trial(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Trial]:
    """Every test runs twice: with a supervisor started for the trial, and with one a
    `SupervisorPool` started ahead (as Ray workers do); the pool closes before the check that
    nothing was left behind."""
    if request.param == "started-for-the-trial":
        yield Trial(tmp_path)
        return
    pool = SupervisorPool()
    try:
        yield Trial(tmp_path, pool)
    finally:
        pool.close()


def live_members(pgid: int) -> list[psutil.Process]:
    """Processes still in the group, zombies (already dead, waiting to be reaped) excluded."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != "zombie":
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def is_dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Any, timeout_s: float = 10.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def python_argv(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# --- completing ---------------------------------------------------------------------------


def test_completed_trial_reports_the_last_objective_value(trial: Trial) -> None:
    hps = {"x": 0.3, "y": 0.7, "opt": "adam", "layers": 3, "epochs": 4}
    outcome = trial.run_standin(hps)

    expected = standin.final_accuracy(x=0.3, y=0.7, opt="adam", layers=3)
    assert outcome.state is TrialState.COMPLETED
    assert outcome.objective == pytest.approx(expected, abs=1e-6)
    assert outcome.objective == pytest.approx(0.95, abs=1e-6)
    assert outcome.exit_code == 0
    assert outcome.reason is None and outcome.signal is None and not outcome.retryable
    assert outcome.metrics[OBJECTIVE] == outcome.objective
    assert outcome.metrics["train-loss"] == pytest.approx(1 - expected + 0.05, abs=1e-6)
    assert 0 < outcome.duration_s < 30


def test_on_metric_gets_every_report_with_per_metric_steps(trial: Trial) -> None:
    trial.run_standin({"epochs": 3})
    objective_reports = [(v, s) for n, v, s in trial.reported if n == OBJECTIVE]
    loss_steps = [s for n, _, s in trial.reported if n == "train-loss"]
    curve = [standin.epoch_accuracy(DEFAULT_FINAL, epoch=e, epochs=3) for e in (1, 2, 3)]
    assert [s for _, s in objective_reports] == [1, 2, 3]
    assert [v for v, _ in objective_reports] == pytest.approx(curve, abs=1e-6)
    assert loss_steps == [1, 2, 3]


def test_objective_is_the_last_value_not_the_best(trial: Trial) -> None:
    code = """
        for value in (0.5, 0.9, 0.7):
            print(f"validation: accuracy={value}")
    """
    outcome = trial.run(python_argv(code))
    assert outcome.state is TrialState.COMPLETED
    assert outcome.objective == 0.7


def test_hyperparameters_and_environment_reach_the_trainer(trial: Trial) -> None:
    outcome = trial.run_standin({"x": 0.25, "epochs": 1, "unknown_knob": "blue"})
    record = json.loads((trial.model_dir / "model.txt").read_text())
    assert outcome.state is TrialState.COMPLETED
    assert record["hyperparameters"]["x"] == 0.25
    assert record["unknown_hyperparameters"] == {"unknown_knob": "blue"}
    assert record["env"]["SM_MODEL_DIR"] == str(trial.model_dir)


def test_log_streams_lines_while_the_trainer_runs(trial: Trial) -> None:
    seen_in_log: list[bool] = []

    def on_metric(name: str, value: float, step: int) -> None:
        if name == OBJECTIVE:
            seen_in_log.append(f"[Epoch {step}] validation: accuracy=" in trial.log)

    outcome = trial.run_standin({"epochs": 3, "sleep": 0.1}, on_metric=on_metric)
    assert outcome.state is TrialState.COMPLETED
    assert seen_in_log == [True, True, True]


def test_log_has_header_output_and_footer_and_retries_append(trial: Trial) -> None:
    trial.run_standin({"epochs": 1})
    trial.run_standin({"epochs": 2})
    log = trial.log
    assert log.count("==== openamt") == 4
    assert log.count(": starting ") == 2
    assert log.count("Completed after") == 2
    assert "[Epoch 2] validation: accuracy=" in log.split(": starting ")[2]
    assert "train: loss=" in log


def test_partial_lines_from_the_trainer_are_joined(trial: Trial) -> None:
    outcome = trial.run_standin({"epochs": 2, "split_lines": 1})
    assert outcome.state is TrialState.COMPLETED
    assert outcome.objective == pytest.approx(DEFAULT_FINAL, abs=1e-6)
    assert [s for n, _, s in trial.reported if n == OBJECTIVE] == [1, 2]
    assert f"[Epoch 2] validation: accuracy={DEFAULT_FINAL:.6f}\n" in trial.log


def test_garbage_and_invalid_utf8_do_not_break_reading(trial: Trial) -> None:
    outcome = trial.run_standin({"epochs": 1})
    assert outcome.state is TrialState.COMPLETED
    assert "\ufffd" in trial.log
    assert "validation: accuracy=not-a-number" in trial.log
    assert [n for n, _, _ in trial.reported].count(OBJECTIVE) == 1


def test_metrics_on_stderr_count_too(trial: Trial) -> None:
    code = """
        import sys
        print("validation: accuracy=0.25", file=sys.stderr)
    """
    outcome = trial.run(python_argv(code))
    assert outcome.state is TrialState.COMPLETED
    assert outcome.objective == 0.25


def test_an_unterminated_last_line_is_parsed_and_logged(trial: Trial) -> None:
    code = """
        import sys
        sys.stdout.write("validation: accuracy=0.5")
    """
    outcome = trial.run(python_argv(code))
    assert outcome.objective == 0.5
    assert "validation: accuracy=0.5\n====" in trial.log


def test_hundred_thousand_lines_are_fast(trial: Trial) -> None:
    code = """
        import sys
        out = sys.stdout
        for i in range(100_000):
            out.write(f"[Step {i}] train: loss=0.{i % 97:02d} validation: accuracy=0.{i % 89}\\n")
        out.write("validation: accuracy=0.875\\n")
    """
    started = time.monotonic()
    outcome = trial.run(python_argv(code))
    elapsed = time.monotonic() - started
    assert outcome.state is TrialState.COMPLETED
    assert outcome.objective == 0.875
    assert len(trial.reported) == 200_001
    assert trial.reported[-1] == (OBJECTIVE, 0.875, 100_001)
    assert elapsed < 15, f"100k lines took {elapsed:.1f}s"


# --- failing ------------------------------------------------------------------------------


def test_crash_fails_with_exit_code_and_stderr_traceback(trial: Trial) -> None:
    outcome = trial.run_standin({"crash": 1})
    assert outcome.state is TrialState.FAILED
    assert outcome.exit_code == 3
    assert not outcome.retryable
    assert outcome.objective is None
    assert outcome.metrics[OBJECTIVE] > 0  # epoch 1 was reported before the crash
    assert outcome.reason is not None
    assert outcome.reason.startswith("trainer exited with code 3; last lines of stderr:")
    assert "Traceback (most recent call last)" in outcome.reason
    assert "RuntimeError: standin_trainer: crash requested" in outcome.reason


def test_failure_reason_keeps_only_the_tail_of_stderr(trial: Trial) -> None:
    code = """
        import sys
        for i in range(200):
            print(f"stderr line {i:03d} " + "x" * 60, file=sys.stderr)
        print("last words", file=sys.stderr)
        sys.exit(2)
    """
    outcome = trial.run(python_argv(code))
    assert outcome.exit_code == 2
    assert outcome.reason is not None
    tail = outcome.reason.split("last lines of stderr:\n", 1)[1]
    assert tail.endswith("last words")
    assert "stderr line 199" in tail
    assert "stderr line 100" not in tail
    assert len(tail) <= 2100
    assert len(tail.splitlines()) <= 20


def test_failure_without_stderr_shows_stdout_tail(trial: Trial) -> None:
    outcome = trial.run(python_argv('print("only stdout here"); raise SystemExit(5)'))
    assert outcome.exit_code == 5
    assert outcome.reason is not None
    assert "stderr was empty" in outcome.reason and "only stdout here" in outcome.reason


def test_fail_if_file(trial: Trial, tmp_path: Path) -> None:
    marker = tmp_path / "fail-marker"
    assert trial.run_standin({"fail_if_file": str(marker)}).state is TrialState.COMPLETED
    marker.touch()
    outcome = trial.run_standin({"fail_if_file": str(marker)})
    assert outcome.state is TrialState.FAILED and outcome.exit_code == 4
    assert "exists" in (outcome.reason or "")


def test_killed_by_sigkill_is_retryable(trial: Trial) -> None:
    outcome = trial.run_standin({"kill_self": 1})
    assert outcome.state is TrialState.FAILED
    assert outcome.retryable
    assert outcome.signal == "SIGKILL"
    assert outcome.exit_code is None
    assert "SIGKILL" in (outcome.reason or "")


def test_a_signal_from_outside_is_retryable_and_named(trial: Trial) -> None:
    def kill_trainer_from_outside(name: str, value: float, step: int) -> None:
        if name == OBJECTIVE:
            os.kill(trial.trainer_pgid(), signal.SIGTERM)

    outcome = trial.run_standin({"hang": 1}, on_metric=kill_trainer_from_outside)
    assert outcome.state is TrialState.FAILED
    assert outcome.retryable
    assert outcome.signal == "SIGTERM"
    assert "did not send" in (outcome.reason or "")


def test_a_crash_signal_is_not_retryable(trial: Trial) -> None:
    outcome = trial.run(python_argv("import os, signal; os.kill(os.getpid(), signal.SIGABRT)"))
    assert outcome.state is TrialState.FAILED
    assert outcome.signal == "SIGABRT"
    assert not outcome.retryable


def test_kill_self_once_file_fails_once_then_completes_in_the_same_log(
    trial: Trial, tmp_path: Path
) -> None:
    marker = tmp_path / "killed-once"
    first = trial.run_standin({"kill_self_once_file": str(marker)})
    second = trial.run_standin({"kill_self_once_file": str(marker)})
    assert (first.state, first.retryable) == (TrialState.FAILED, True)
    assert second.state is TrialState.COMPLETED
    assert trial.log.count(": starting ") == 2


def test_nan_objective_fails(trial: Trial) -> None:
    outcome = trial.run_standin({"nan": 1})
    assert outcome.state is TrialState.FAILED
    assert outcome.exit_code == 0
    assert outcome.objective is None
    assert "nan" in (outcome.reason or "") and "not a finite number" in (outcome.reason or "")


def test_infinite_objective_fails(trial: Trial) -> None:
    outcome = trial.run(python_argv('print("validation: accuracy=inf")'))
    assert outcome.state is TrialState.FAILED
    assert "inf" in (outcome.reason or "")


def test_objective_never_matched_names_metric_and_regex(trial: Trial) -> None:
    outcome = trial.run_standin({"no_metric": 1})
    assert outcome.state is TrialState.FAILED
    assert outcome.exit_code == 0
    reason = outcome.reason or ""
    assert OBJECTIVE in reason
    assert repr(r"validation: accuracy=(\S+)") in reason
    assert "never matched" in reason
    assert outcome.metrics["train-loss"] > 0


def test_missing_executable_fails_with_a_reason(trial: Trial) -> None:
    outcome = trial.run(["no-such-trainer-executable", "--x", "1"])
    assert outcome.state is TrialState.FAILED
    assert "no-such-trainer-executable" in (outcome.reason or "")
    assert not outcome.retryable


def test_missing_working_directory_fails_with_a_reason(trial: Trial, tmp_path: Path) -> None:
    outcome = trial.run([sys.executable, "-c", "pass"], cwd=tmp_path / "absent")
    assert outcome.state is TrialState.FAILED
    assert "could not start the trainer" in (outcome.reason or "")
    assert "could not start the trainer" in trial.log


# --- timeouts, stops and orphans ----------------------------------------------------------


def test_timeout_kills_the_whole_process_group(trial: Trial) -> None:
    outcome = trial.run_standin(
        {"hang": 1, "spawn_child": 1}, max_runtime_s=1.0, grace_period_s=2.0
    )
    assert outcome.state is TrialState.FAILED
    assert outcome.reason == "exceeded max_runtime_in_seconds=1"
    assert not outcome.retryable
    assert outcome.signal == "SIGTERM"
    assert 1.0 <= outcome.duration_s < 5
    assert wait_until(lambda: is_dead(trial.grandchild_pid()))
    assert wait_until(lambda: not live_members(trial.trainer_pgid()))


def test_timeout_escalates_to_sigkill_after_the_grace_period(trial: Trial) -> None:
    outcome = trial.run_standin(
        {"hang": 1, "ignore_sigterm": 1, "spawn_child": 1}, max_runtime_s=0.5, grace_period_s=0.5
    )
    assert outcome.state is TrialState.FAILED
    assert outcome.reason == (
        "exceeded max_runtime_in_seconds=0.5 (killed with SIGKILL after grace_period_s=0.5)"
    )
    assert outcome.signal == "SIGKILL"
    assert outcome.duration_s >= 1.0
    assert wait_until(lambda: not live_members(trial.trainer_pgid()))


def test_a_stop_request_stops_with_the_last_objective_and_its_reason(trial: Trial) -> None:
    requests: list[StopRequest] = []

    def stop_after_first_report(name: str, value: float, step: int) -> None:
        trial.on_metric(name, value, step)
        if name == OBJECTIVE:
            requests.append(StopRequest(reason="stopped early: below the median at epoch 1"))

    outcome = trial.run_standin(
        {"hang": 1, "spawn_child": 1},
        on_metric=stop_after_first_report,
        stop_requested=lambda: requests[0] if requests else None,
    )
    first_epoch = standin.epoch_accuracy(DEFAULT_FINAL, epoch=1, epochs=3)
    assert outcome.state is TrialState.STOPPED
    assert outcome.objective == pytest.approx(first_epoch, abs=1e-6)
    assert outcome.reason == "stopped early: below the median at epoch 1"
    assert outcome.cause is EndCause.TUNER and not outcome.retryable
    assert [n for n, _, _ in trial.reported].count(OBJECTIVE) == 1
    assert wait_until(lambda: not live_members(trial.trainer_pgid()))


def test_a_stop_of_a_trainer_that_ignores_sigterm_kills_it_after_the_grace(trial: Trial) -> None:
    request = StopRequest(reason="stopped early: below the median")
    started = time.monotonic()
    outcome = trial.run_standin(
        {"hang": 1, "ignore_sigterm": 1, "spawn_child": 1},
        grace_period_s=1.0,
        stop_requested=lambda: request if trial.reported else None,
    )
    assert outcome.state is TrialState.STOPPED
    assert "killed with SIGKILL after grace_period_s=1" in outcome.reason
    assert 1.0 <= time.monotonic() - started < 60
    assert wait_until(lambda: is_dead(trial.grandchild_pid()))


def test_stop_before_any_objective_has_no_objective(trial: Trial) -> None:
    request = StopRequest(reason="the job was interrupted", cause=EndCause.INTERRUPTED)
    outcome = trial.run(python_argv("import time; time.sleep(60)"), stop_requested=lambda: request)
    assert outcome.cause is EndCause.INTERRUPTED
    assert outcome.state is TrialState.STOPPED
    assert outcome.objective is None
    assert outcome.duration_s < 10


def test_leftover_children_are_killed_after_a_normal_exit(trial: Trial) -> None:
    started = time.monotonic()
    outcome = trial.run_standin({"spawn_child": 1, "epochs": 1})
    assert outcome.state is TrialState.COMPLETED
    assert time.monotonic() - started < 10  # did not wait for the sleeping grandchild
    assert wait_until(lambda: is_dead(trial.grandchild_pid()))


def test_an_exception_in_on_metric_still_cleans_up(trial: Trial) -> None:
    def explode(name: str, value: float, step: int) -> None:
        raise RuntimeError("reporting failed")

    with pytest.raises(RuntimeError, match="reporting failed"):
        trial.run_standin({"hang": 1, "spawn_child": 1}, on_metric=explode)
    assert wait_until(lambda: not live_members(trial.trainer_pgid()))


WORKER = """
import sys
from pathlib import Path
from orchestrator.spec import MetricDefinition
from orchestrator.trial.process import run_trial_process
from orchestrator.trial.supervisors import SupervisorPool

run_trial_process(
    argv=[sys.executable, sys.argv[1], "--hang", "1"],
    cwd=Path("."),
    env={"PYTHONUNBUFFERED": "1"},
    log_path=Path(sys.argv[2]),
    metric_definitions=[MetricDefinition.model_validate({"Name": "a", "Regex": "accuracy=(.+)"})],
    objective_metric_name="a",
    supervisors=SupervisorPool() if sys.argv[3] == "started-ahead" else None,
)
"""


@pytest.mark.parametrize("supervisor", ["started-for-the-trial", "started-ahead"])
def test_trainer_dies_when_the_worker_running_it_is_killed(tmp_path: Path, supervisor: str) -> None:
    log_path = tmp_path / "log.txt"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(STANDIN), str(log_path), supervisor], cwd=REPO
    )
    try:
        # Starting Python and the worker's imports may take a while on a cold, busy machine.
        started = wait_until(
            lambda: log_path.exists() and "[Epoch 1]" in log_path.read_text(), timeout_s=120
        )
        assert started, log_path.read_text() if log_path.exists() else "no log"
        found = re.search(r"trainer pid=(\d+)", log_path.read_text())
        assert found
        trainer_pid = int(found.group(1))
        assert not is_dead(trainer_pid)
        worker.kill()
        worker.wait()
        assert wait_until(lambda: is_dead(trainer_pid))
    finally:
        worker.kill()
        worker.wait()


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"objective_metric_name": "auc"}, ["objective_metric_name='auc'", OBJECTIVE]),
        ({"max_runtime_s": 0}, ["max_runtime_s=0", "> 0"]),
        ({"max_runtime_s": float("inf")}, ["max_runtime_s=inf", "finite"]),
        ({"grace_period_s": -1.0}, ["grace_period_s=-1.0", ">= 0"]),
        ({"argv": []}, ["argv=[]", "non-empty"]),
        ({"argv": "python train.py"}, ["argv='python train.py'", "list of strings"]),
    ],
)
def test_bad_arguments_are_rejected_before_starting(
    trial: Trial, overrides: dict[str, Any], words: list[str]
) -> None:
    arguments = {"argv": [sys.executable, "-c", "pass"], **overrides}
    with pytest.raises(TrialSetupError) as caught:
        trial.run(**arguments)
    for word in words:
        assert word in str(caught.value)
    assert isinstance(caught.value, OpenAMTError)
    assert not trial.log_path.exists()


def test_an_unwritable_log_raises_after_the_trainer_is_done(trial: Trial) -> None:
    with pytest.raises(TrialError, match="could not write the trial log"):
        trial.run_standin({"epochs": 1}, log_path=Path("/dev/full"))


def test_a_log_that_cannot_be_opened_raises(trial: Trial, tmp_path: Path) -> None:
    with pytest.raises(TrialError, match="could not open the trial log"):
        trial.run_standin({"epochs": 1}, log_path=tmp_path)


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    """Every test must leave no child processes of its own behind (children that were there
    before it, such as the resource tracker an earlier test's multiprocessing started, are not
    its own)."""
    before = set(psutil.Process().children(recursive=True))

    def started_here() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True) if p not in before]

    yield
    assert wait_until(lambda: not started_here()), [p.cmdline() for p in started_here()]


@pytest.fixture
def memory_cgroup(tmp_path: Path) -> Iterator[Path]:
    """A cgroup (v1 memory controller) holding 64 MiB, for a trainer to join and overrun."""
    root = Path("/sys/fs/cgroup/memory")
    group = root / f"openamt-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(64 * 1024 * 1024))
    except OSError as error:
        pytest.skip(f"cannot create a memory cgroup here (needs root and cgroup v1): {error}")
    yield group
    group.rmdir()


def test_a_kernel_oom_kill_is_recorded_as_out_of_memory(trial: Trial, memory_cgroup: Path) -> None:
    code = f"""
        import os
        open({str(memory_cgroup / "cgroup.procs")!r}, "w").write(str(os.getpid()))
        print("validation: accuracy=0.5", flush=True)
        hog = bytearray(1024 * 1024 * 1024)
        """
    outcome = trial.run(python_argv(code))
    assert outcome.state is TrialState.FAILED and outcome.signal == "SIGKILL"
    assert "killed by the kernel's out-of-memory killer" in outcome.reason
    assert outcome.retryable  # from outside the trainer's code: a retry may succeed


def test_a_cuda_out_of_memory_error_says_so(trial: Trial) -> None:
    code = """
        import sys
        print("validation: accuracy=0.5", flush=True)
        sys.exit("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
        """
    outcome = trial.run(python_argv(code))
    assert outcome.state is TrialState.FAILED
    assert outcome.reason.startswith("out of GPU memory: trainer exited with code 1")
