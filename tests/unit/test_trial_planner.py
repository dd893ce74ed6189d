"""The planner's bookkeeping without Ray: order of work, retries, resume reconciliation."""

from __future__ import annotations

import pytest

from orchestrator.control.planner import INTERRUPTED_REASON, TrialPlanner
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import EndCause, TrialEnd, TrialState
from search import SearchSpace, make_searcher

SPACE = {
    "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
    "epochs": 2,
}


def _planner(tmp_path, *, max_jobs=4, parallel=2, retries=0, state=None):
    searcher = make_searcher("Random", SearchSpace.from_config(SPACE), seed=7)
    job_dir = JobDir(path=tmp_path)
    if state is not None:
        searcher.load_state_dict(state)
    return TrialPlanner(
        searcher=searcher,
        ledger=Ledger(job_dir=tmp_path),
        job_dir=job_dir,
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        max_retry_attempts=retries,
    )


def _done(objective=0.5):
    return TrialEnd(state=TrialState.COMPLETED, objective=objective)


def test_hands_out_at_most_max_parallel_and_stops_at_max_jobs(tmp_path):
    planner = _planner(tmp_path, max_jobs=3, parallel=2)
    first, second = planner.next_trial(), planner.next_trial()
    assert (first.trial_id, second.trial_id) == ("trial-0001", "trial-0002")
    assert planner.next_trial() is None  # both slots busy
    planner.record_end(first.trial_id, _done())
    third = planner.next_trial()
    assert third.trial_id == "trial-0003" and third.hyperparameters["epochs"] == 2
    planner.record_end(second.trial_id, _done())
    assert planner.next_trial() is None and not planner.done  # trial 3 still running
    planner.record_end(third.trial_id, _done())
    assert planner.done and planner.finished_count == 3


def test_retryable_failures_are_retried_with_the_same_config_up_to_the_limit(tmp_path):
    planner = _planner(tmp_path, max_jobs=1, parallel=1, retries=1)
    trial = planner.next_trial()
    killed = TrialEnd(
        state=TrialState.FAILED, objective=None, reason="SIGKILL", cause=EndCause.EXTERNAL
    )
    assert planner.record_end(trial.trial_id, killed) is True
    again = planner.next_trial()
    assert (again.trial_id, again.attempt) == (trial.trial_id, 2)
    assert again.hyperparameters == trial.hyperparameters
    assert planner.record_end(again.trial_id, killed) is False  # limit reached
    assert planner.done
    assert planner.searcher.observations[trial.trial_id][1] is None  # observed once, as failed


def test_script_errors_are_not_retried(tmp_path):
    planner = _planner(tmp_path, max_jobs=1, parallel=1, retries=5)
    trial = planner.next_trial()
    crash = TrialEnd(
        state=TrialState.FAILED, objective=None, reason="exit 3", cause=EndCause.TRAINER
    )
    assert planner.record_end(trial.trial_id, crash) is False
    assert planner.done


def test_resume_requeues_running_trials_and_replays_missed_observations(tmp_path):
    planner = _planner(tmp_path, max_jobs=4, parallel=2)
    a, b = planner.next_trial(), planner.next_trial()
    planner.record_end(a.trial_id, _done(0.9))
    # Crash window: the ledger recorded b's end, the searcher state was not saved after it.
    state_before = planner.searcher.state_dict()
    planner.ledger.append(
        Event.TRIAL_COMPLETED, trial_id=b.trial_id, attempt=1, status="Completed", objective=0.4
    )
    c = planner.next_trial()  # started, then the driver dies
    del planner

    state_before["pending"].append([c.trial_id, dict(c.hyperparameters)])
    state_before["num_suggested"] += 1
    resumed = _planner(tmp_path, max_jobs=4, parallel=2, state=state_before)
    resumed.resume()
    assert resumed.searcher.observations[b.trial_id][1] == 0.4  # replayed from the ledger
    again = resumed.next_trial()
    assert (again.trial_id, again.attempt) == (c.trial_id, 2)
    assert again.hyperparameters == c.hyperparameters
    fresh = resumed.next_trial()
    assert fresh.trial_id == "trial-0004"
    events = resumed.ledger.events()
    interrupted = [e for e in events if e.get("interrupted")]
    assert [e["trial_id"] for e in interrupted] == [c.trial_id]
    assert interrupted[0]["reason"] == INTERRUPTED_REASON


def test_resume_forgets_suggestions_that_never_started(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=1)
    planner.searcher.suggest("trial-0001")  # suggested, crash before the ledger line
    state = planner.searcher.state_dict()
    resumed = _planner(tmp_path, max_jobs=2, parallel=1, state=state)
    resumed.resume()
    assert dict(resumed.searcher.pending) == {}
    assert resumed.next_trial().trial_id == "trial-0001"


def test_stop_new_trials_lets_running_ones_finish(tmp_path):
    planner = _planner(tmp_path, max_jobs=10, parallel=2)
    a = planner.next_trial()
    planner.stop_new_trials("TargetObjectiveReached")
    assert planner.next_trial() is None and not planner.done
    planner.record_end(a.trial_id, _done())
    assert planner.done and planner.stop_reason == "TargetObjectiveReached"


def test_every_start_and_end_is_in_the_ledger(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=2)
    a, b = planner.next_trial(), planner.next_trial()
    planner.record_result(a.trial_id, metric="acc", value=0.3, step=1)
    planner.record_end(a.trial_id, _done(0.3))
    planner.record_end(b.trial_id, TrialEnd(state=TrialState.STOPPED, objective=0.1))
    trials = summarize_trials(planner.ledger.events())
    assert trials[a.trial_id].history == [(1, 0.3)]
    assert trials[b.trial_id].state is TrialState.STOPPED
    assert planner.searcher.observations[b.trial_id][1] == pytest.approx(0.1)
