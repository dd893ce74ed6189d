"""SageMaker's tuning features on a local Ray: early stopping, Hyperband, completion criteria,
warm start and repeatability."""

from __future__ import annotations

import logging

import pytest

from orchestrator.errors import SpecError
from orchestrator.store.ledger import Event, read_events
from orchestrator.trial.outcome import TrialState
from orchestrator.tune.runner import RunOptions, run_job
from tests.helpers import standin_spec

pytestmark = pytest.mark.usefixtures("local_ray")
QUIET = RunOptions(show_progress=False, metrics_port=None)


def _run(tmp_path, **overrides):
    spec = standin_spec(tmp_path, **overrides)
    return spec, run_job(spec, QUIET)


def _x_grid(*values: str) -> dict:
    """A grid over x in the given order (the stand-in reads the string as a float)."""
    return {"x": {"type": "Categorical", "values": list(values)}}


def _epochs_run(spec) -> int:
    """Epochs trained over all trials: each trial's last reported step (reports of a fast
    trainer are sampled, so the ledger may hold fewer lines than epochs)."""
    last: dict[str, int] = {}
    for e in read_events(spec.job_dir / "ledger.jsonl"):
        if e["event"] == Event.TRIAL_RESULT.value:
            last[e["trial_id"]] = max(last.get(e["trial_id"], 0), e["step"])
    return sum(last.values())


def test_early_stopping_stops_the_bad_trials_and_keeps_the_good(tmp_path):
    spec, result = _run(
        tmp_path,
        strategy="Grid",
        hyperparameter_ranges=_x_grid("0.30", "0.32", "0.28", "0.95", "0.31", "0.05"),
        hyperparameters={"y": 0.7, "epochs": 4, "sleep": 0.2},
        max_jobs=6,
        max_parallel_jobs=1,
        early_stopping_type="Auto",
    )
    states = {t.config["x"]: t.state for t in result.trials.values()}
    assert states == {
        "0.30": TrialState.COMPLETED,  # the first three are the reference
        "0.32": TrialState.COMPLETED,
        "0.28": TrialState.COMPLETED,
        "0.95": TrialState.STOPPED,  # far worse than the median at epoch 1
        "0.31": TrialState.COMPLETED,  # better than the median: runs to the end
        "0.05": TrialState.STOPPED,
    }
    stopped = [t for t in result.trials.values() if t.state is TrialState.STOPPED]
    assert all(t.objective is not None and len(t.history) < 4 for t in stopped)


def test_hyperband_runs_fewer_epochs_than_the_same_job_without_it(tmp_path):
    common = {
        "hyperparameters": {"epochs": 9, "sleep": 0.2},
        "max_jobs": 9,
        "max_parallel_jobs": 2,
        "random_seed": 3,
    }
    (tmp_path / "full").mkdir()
    full_spec, full = _run(tmp_path / "full", strategy="Random", **common)
    assert _epochs_run(full_spec) == 81
    # Successive halving's saving, on random configurations (SageMaker's Hyperband): 30 and 52
    # epochs in two runs on a loaded machine (the order results arrive in moves it). A guided
    # searcher proposes better and better configurations, which rightly pass more rungs, so
    # nothing need stop when its first ones come in rising order (seed 3 does: all 81 epochs).
    # Seed 0's Sobol design starts with final accuracies 0.87, 0.73, 0.43: the third starts
    # once a slot frees, after both others reported at rung 1, so it is always stopped there.
    for selection, seed, most_epochs in (("Random", 3, 81 * 0.8), ("Bayesian", 0, 81 - 1)):
        (tmp_path / selection).mkdir()
        hb_spec, hyperband = _run(
            tmp_path / selection,
            strategy="Hyperband",
            hyperband_strategy_config={
                "min_resource": 1,
                "max_resource": 9,
                "configuration_selection": selection,
            },
            **(common | {"random_seed": seed}),
        )
        assert _epochs_run(hb_spec) < most_epochs, selection
        assert any(t.state is TrialState.STOPPED for t in hyperband.trials.values()), selection
        assert len(hyperband.trials) == 9


def test_hyperband_on_a_used_up_grid_runs_stopped_configurations_again(tmp_path):
    spec, result = _run(
        tmp_path,
        strategy="Hyperband",
        hyperband_strategy_config={
            "min_resource": 1,
            "max_resource": 9,
            "configuration_selection": "Random",
        },
        hyperparameter_ranges=_x_grid("0.30", "0.95", "0.05", "0.60"),
        hyperparameters={"y": 0.7, "epochs": 9, "sleep": 0.1},
        max_jobs=8,
        max_parallel_jobs=1,
    )
    trials = [result.trials[t] for t in sorted(result.trials)]
    assert len({t.config["x"] for t in trials[:4]}) == 4  # every configuration once first
    assert len(trials) > 4, "the job went on after the grid was used up"
    for position, trial in enumerate(trials[4:], start=4):
        earlier = [t for t in trials[:position] if t.config == trial.config]
        assert earlier and all(t.state is TrialState.STOPPED for t in earlier)
        assert len(trial.history) >= 3  # judged first one rung up: never stopped at epoch 1
    if result.reason == "SearchSpaceExhausted":  # it ended because every one ran in full
        last = {t.config["x"]: t for t in trials}
        assert all(t.state is TrialState.COMPLETED for t in last.values())
    else:
        assert (result.reason, len(trials)) == ("MaxNumberOfTrainingJobsReached", 8)


def test_target_objective_ends_the_job_early(tmp_path):
    _, result = _run(
        tmp_path,
        max_jobs=30,
        max_parallel_jobs=1,
        completion_criteria={"target_objective_metric_value": 0.85},
    )
    assert result.reason == "TargetObjectiveReached"
    assert len(result.trials) < 30
    assert result.best.objective >= 0.85


def test_best_objective_not_improving_ends_the_job_early(tmp_path):
    _, result = _run(
        tmp_path,
        strategy="Grid",
        hyperparameter_ranges=_x_grid("0.3", "0.5", "0.6", "0.7", "0.8", "0.9"),
        hyperparameters={"y": 0.7, "epochs": 1},
        max_jobs=6,
        max_parallel_jobs=1,
        completion_criteria={
            "best_objective_not_improving": {"max_number_of_training_jobs_not_improving": 3}
        },
    )
    assert result.reason == "BestObjectiveNotImproving"
    assert len(result.trials) == 4


def test_job_runtime_limit_ends_the_job_and_records_why(tmp_path):
    spec, result = _run(
        tmp_path,
        max_jobs=20,
        max_parallel_jobs=2,
        hyperparameters={"epochs": 3, "sleep": 1.0},
        completion_criteria={"max_runtime_in_seconds": 8},
    )
    assert result.reason == "MaxRuntimeReached"
    assert len(result.trials) < 20
    last = read_events(spec.job_dir / "ledger.jsonl")[-1]
    assert (last["event"], last["reason"]) == (Event.JOB_COMPLETED.value, "MaxRuntimeReached")


@pytest.mark.slow
def test_convergence_detected_ends_a_bayesian_job(tmp_path):
    _, result = _run(
        tmp_path,
        strategy="Bayesian",
        hyperparameter_ranges={"x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0}},
        hyperparameters={"y": 0.7, "epochs": 1},
        max_jobs=40,
        max_parallel_jobs=1,
        completion_criteria={"convergence_detected": {"complete_on_convergence": "Enabled"}},
    )
    assert result.reason == "ConvergenceDetected"
    assert len(result.trials) < 40
    assert result.best.objective == pytest.approx(0.89, abs=2e-3)  # layers=2 costs 0.01


def _parent(tmp_path, **overrides):
    return _run(tmp_path, name="parent", max_jobs=10, random_seed=11, **overrides)


def test_warm_start_exploits_the_best_parent_region_first(tmp_path):
    parent_spec, parent = _parent(tmp_path)
    best = parent.best.config
    _, child = _run(
        tmp_path,
        name="child",
        strategy="Bayesian",
        max_jobs=3,
        max_parallel_jobs=1,
        warm_start_config={
            "parent_hyperparameter_tuning_jobs": [str(parent_spec.job_dir)],
            "warm_start_type": "IdenticalDataAndAlgorithm",
        },
    )
    first = list(child.trials.values())
    distances = [abs(t.config["x"] - best["x"]) + abs(t.config["y"] - best["y"]) for t in first]
    assert min(distances) < 0.3, (best, [t.config for t in first])
    assert child.best.objective >= parent.best.objective - 0.02


def test_transfer_learning_drops_parents_outside_the_new_ranges(tmp_path, caplog):
    parent_spec, parent = _parent(tmp_path)
    narrowed = {
        "x": {"type": "Continuous", "min_value": 0.0, "max_value": 0.5},
        "y": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
    }
    outside = [t for t in parent.trials.values() if t.config["x"] > 0.5]
    assert outside, "the parent should have trials with x > 0.5"
    with caplog.at_level(logging.WARNING):
        _, child = _run(
            tmp_path,
            name="child",
            strategy="Bayesian",
            hyperparameter_ranges=narrowed,
            hyperparameters={"epochs": 3},  # changed static value: allowed here
            max_jobs=2,
            max_parallel_jobs=1,
            warm_start_config={
                "parent_hyperparameter_tuning_jobs": [str(parent_spec.job_dir)],
                "warm_start_type": "TransferLearning",
            },
        )
    assert len(child.trials) == 2
    assert "outside" in caplog.text.lower() or "dropp" in caplog.text.lower()


def test_identical_warm_start_refuses_a_changed_static_value(tmp_path):
    parent_spec, _ = _parent(tmp_path)
    spec = standin_spec(
        tmp_path,
        name="child",
        hyperparameters={"epochs": 5},
        warm_start_config={
            "parent_hyperparameter_tuning_jobs": [str(parent_spec.job_dir)],
            "warm_start_type": "IdenticalDataAndAlgorithm",
        },
    )
    with pytest.raises(SpecError, match="hyperparameters"):
        run_job(spec, QUIET)


def test_same_seed_same_spec_gives_the_same_suggestions(tmp_path):
    runs = []
    for name in ("first", "second"):
        _, result = _run(
            tmp_path,
            name=name,
            strategy="Bayesian",
            max_jobs=7,
            max_parallel_jobs=1,
            random_seed=5,
        )
        runs.append([t.config for t in result.trials.values()])
    assert runs[0] == runs[1]
    _, other = _run(
        tmp_path, name="third", strategy="Bayesian", max_jobs=7, max_parallel_jobs=1, random_seed=6
    )
    assert [t.config for t in other.trials.values()] != runs[0]
