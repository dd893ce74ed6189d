"""SageMaker notebooks, written against the SageMaker Python SDK (v2), run on openamt with only
their import lines changed: estimator fit, Random and Bayesian tuning with positional arguments,
warm start, early stopping, completion criteria, analytics, attach and stop from other processes.

Each notebook runs as a real Python process (embedded Ray, real trials of the stand-in trainer,
and, marked slow, the MXNet trainer in its own environment)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.store.view import load_job_view
from orchestrator.trial.outcome import TrialState
from tests.fixtures.standin_trainer import final_accuracy
from tests.helpers import REPO, STANDIN

NOTEBOOKS = REPO / "tests" / "fixtures" / "notebooks"
MXNET_PYTHON = REPO / ".venv-mxnet" / "bin" / "python"
IMPORT_LINE = re.compile(r"^(\s*)(import|from) sagemaker\b", re.M)


def port(source: str) -> str:
    """The whole port: `sagemaker` becomes `orchestrator.sagemaker` in the import lines."""

    def ported(line: re.Match[str]) -> str:
        if line.group(2) == "import":
            return f"{line.group(1)}from orchestrator import sagemaker"
        return f"{line.group(1)}from orchestrator.sagemaker"

    return IMPORT_LINE.sub(ported, source)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A notebook's directory: its training script, its data, its own S3 mirror."""
    (tmp_path / "train.py").write_text(STANDIN.read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("1,2\n")
    return tmp_path


def notebook_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "OPENAMT_"))}
    env.update(
        PYTHONPATH=str(REPO),
        OPENAMT_S3_ROOT=str(project / "s3"),
    )
    return env


def run_notebook(
    name: str,
    project: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> list[dict[str, Any]]:
    """Port notebook `name` into `project`, run it there, and return its cells' outputs."""
    source = (NOTEBOOKS / name).read_text()
    ported = port(source)
    changed = changed_lines(source, ported)
    assert changed and all(IMPORT_LINE.match(before) for before, _ in changed), changed
    script = project / f"ported_{name}"
    script.write_text(ported)
    completed = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=project,
        env={**notebook_env(project), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return [
        json.loads(line[5:]) for line in completed.stdout.splitlines() if line.startswith("CELL ")
    ]


def mirror_path(project: Path, uri: str) -> Path:
    """Where an s3:// URI of the notebook's mirror lives on disk."""
    assert uri.startswith("s3://"), uri
    return project / "s3" / uri.removeprefix("s3://")


def test_porting_changes_only_the_import_lines() -> None:
    for notebook in NOTEBOOKS.glob("*.py"):
        source = notebook.read_text()
        ported = port(source)
        assert "import sagemaker" not in re.sub(
            r"orchestrator\.sagemaker|orchestrator import sagemaker", "", ported
        )
        for before, after in changed_lines(source, ported):
            assert IMPORT_LINE.match(before), before
            assert "orchestrator" in after, after


def test_a_tuning_notebook_runs_unchanged_but_for_its_imports(project: Path) -> None:
    cells = {cell["cell"]: cell for cell in run_notebook("tune_standin.py", project)}

    upload = cells["upload"]
    assert upload["inputs"] == f"s3://{upload['bucket']}/data/DEMO-standin"
    assert (mirror_path(project, upload["inputs"]) / "train.csv").read_text() == "1,2\n"

    baseline = cells["baseline"]
    assert baseline["status"] == "Completed"
    assert mirror_path(project, baseline["model_data"]).is_dir()
    accuracy = [row["value"] for row in baseline["metrics"]]
    assert accuracy[-1] == pytest.approx(final_accuracy(x=0.5, y=0.5), abs=1e-6)
    assert len(accuracy) == 2  # one value per epoch

    random = cells["random"]
    assert random["status"] == "Completed"
    rows = random["rows"]
    assert len(rows) == 4
    objectives = [row["FinalObjectiveValue"] for row in rows]
    assert objectives == sorted(objectives, reverse=True)
    for row in rows:  # each trial's objective is the stand-in's closed form of its values
        expected = final_accuracy(
            x=float(row["x"]), y=float(row["y"]), opt=row["opt"], layers=int(row["layers"])
        )
        assert row["FinalObjectiveValue"] == pytest.approx(expected, abs=1e-6)
        assert row["TrainingJobStatus"] == "Completed"
    assert random["best"] == rows[0]["TrainingJobName"]
    assert mirror_path(project, random["best_model_data"]).is_dir()

    bayesian = cells["bayesian"]
    assert bayesian["status"] == "Completed"
    assert bayesian["warm_start"]["WarmStartType"] == "IdenticalDataAndAlgorithm"
    parents = bayesian["warm_start"]["ParentHyperParameterTuningJobs"]
    assert [p["HyperParameterTuningJobName"] for p in parents] == [random["job"]]
    assert bayesian["best"] >= 0.85  # it stopped on reaching the target ...
    assert bayesian["rows"] < 20  # ... before max_jobs
    assert "target" in str(bayesian["completion"]).lower(), bayesian["completion"]
    job_dir = project / "s3" / upload["bucket"] / bayesian["job"]
    view = load_job_view(job_dir)
    assert not [t for t in view.trials.values() if t.state is TrialState.RUNNING]


def test_a_job_fitted_without_waiting_is_attached_to_from_other_processes(project: Path) -> None:
    started = run_notebook("attach_standin.py", project, "start", "2", "0.5", "3")
    name = started[0]["job"]
    assert started[0]["status"] == "InProgress"  # fit(wait=False) returned while it runs
    follow = run_notebook("attach_standin.py", project, "follow", name)[0]
    assert follow["status"] == "Completed"
    assert len(follow["rows"]) == 3
    assert follow["best"] == follow["rows"][0]["TrainingJobName"]
    assert all(row["TrainingJobStatus"] == "Completed" for row in follow["rows"])


def test_stop_tuning_job_from_another_process_stops_its_trials_gracefully(project: Path) -> None:
    started = run_notebook("attach_standin.py", project, "start", "30", "1.0", "6")
    name = started[0]["job"]
    job_dir = Path(started[0]["job_dir"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until both trials run and have reported an epoch
        view = load_job_view(job_dir)
        running = [t for t in view.trials.values() if t.state is TrialState.RUNNING]
        if len(running) == 2 and all(t.history for t in running):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no two trials with an objective ran in {job_dir}")

    stopped = run_notebook("attach_standin.py", project, "stop", name)[0]

    assert stopped["status"] == "Stopped"
    assert stopped["counters"]["Stopped"] == 2 and stopped["counters"]["InProgress"] == 0
    view = load_job_view(job_dir)
    assert not view.driver_running
    ended = [t for t in view.trials.values() if t.state is TrialState.STOPPED]
    assert len(ended) == 2 and all(t.objective is not None for t in ended)
    assert not _trainers_of(job_dir)


def _trainers_of(job_dir: Path) -> list[int]:
    """Pids of processes still running in the job's trial directories."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(job_dir) in part for part in process.info["cmdline"] or []):
                found.append(process.pid)
    return found


@pytest.mark.slow
def test_the_mxnet_cifar10_notebook_runs_on_the_mxnet_trainer(project: Path) -> None:
    from models.synthetic_cifar import write_synthetic_cifar

    assert MXNET_PYTHON.exists(), "make setup builds .venv-mxnet"
    (project / "data" / "train.csv").unlink()
    write_synthetic_cifar(dest=project / "data", train_images=320, test_images=100, seed=0)
    (project / "cifar10.py").write_text((REPO / "models" / "mxnet_cifar10.py").read_text())

    cell = run_notebook(
        "tune_mxnet_cifar10.py", project, env={"OPENAMT_MXNET_PYTHON": str(MXNET_PYTHON)}
    )[0]

    assert cell["baseline"] == "Completed"
    assert any(mirror_path(project, cell["baseline_model_data"]).iterdir())  # saved parameters
    assert cell["status"] == "Completed" and cell["strategy"] == "Bayesian"
    rows = cell["rows"]
    assert len(rows) == 3 and all(row["TrainingJobStatus"] == "Completed" for row in rows)
    objectives = [row["FinalObjectiveValue"] for row in rows]
    assert objectives == sorted(objectives, reverse=True)
    assert all(0.0 <= value <= 1.0 for value in objectives)
    assert all(0.0 <= float(row["momentum"]) <= 0.99 for row in rows)
