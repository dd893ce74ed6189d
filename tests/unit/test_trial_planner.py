"""The planner's bookkeeping without Ray: order of work, starts on resources, stops, retries,
and resume reconciliation."""

from __future__ import annotations

import json

import pytest

from orchestrator.control.planner import (
    INTERRUPTED_REASON,
    MAX_CRASHED_ATTEMPTS,
    TrialInfrastructureError,
    TrialPlanner,
)
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import EndCause, StopRequest, TrialEnd, TrialState
from search import SearchSpace, make_searcher

SPACE = {
    "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
    "epochs": 2,
}


def _planner(tmp_path, *, max_jobs=4, parallel=2, retries=0, state=None, capacity=None):
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
        capacity=capacity,
    )


def _start(planner):
    """Hand out the next trial and let it start, as Ray does once it has the resources."""
    assignment = planner.next_trial()
    if assignment is not None:
        planner.trial_started(assignment.trial_id)
    return assignment


def _done(objective=0.5):
    return TrialEnd(state=TrialState.COMPLETED, objective=objective)


def _started_ids(planner):
    return [e["trial_id"] for e in planner.ledger.events() if e["event"] == "trial_started"]


def test_hands_out_at_most_max_parallel_and_stops_at_max_jobs(tmp_path):
    planner = _planner(tmp_path, max_jobs=3, parallel=2)
    first, second = _start(planner), _start(planner)
    assert (first.trial_id, second.trial_id) == ("trial-0001", "trial-0002")
    assert planner.next_trial() is None  # both slots busy
    planner.record_end(first.trial_id, _done())
    third = _start(planner)
    assert third.trial_id == "trial-0003" and third.hyperparameters["epochs"] == 2
    planner.record_end(second.trial_id, _done())
    assert planner.next_trial() is None and not planner.done  # trial 3 still running
    planner.record_end(third.trial_id, _done())
    assert planner.done and planner.finished_count == 3


def test_a_trial_is_recorded_as_started_only_once_it_runs(tmp_path):
    planner = _planner(tmp_path, max_jobs=4, parallel=4, capacity=lambda: 1)
    waiting = planner.next_trial()
    assert _started_ids(planner) == []  # waiting for resources: not in the record
    assert planner.next_trial() is None  # the cluster holds one: no second pending point
    planner.trial_started(waiting.trial_id)
    assert _started_ids(planner) == [waiting.trial_id]
    assert planner.next_trial() is not None  # one may wait while one runs
    assert planner.next_trial() is None
    assert len(planner.searcher.pending) == 2


def test_suggestions_that_never_got_resources_are_forgotten_at_the_end(tmp_path):
    planner = _planner(tmp_path, max_jobs=4, parallel=2)
    running, waiting = _start(planner), planner.next_trial()
    planner.stop_job("MaxRuntimeReached", StopRequest(reason="the job completed"))
    planner.record_end(running.trial_id, TrialEnd(state=TrialState.STOPPED, objective=0.2))
    assert planner.done
    planner.close()
    state = planner.job_dir.load_searcher_state()
    assert state["pending"] == []
    assert waiting.trial_id not in {t for t, _, _ in state["observations"]}
    assert _started_ids(planner) == [running.trial_id]


def test_a_job_stop_asks_every_running_attempt_to_stop_and_starts_nothing(tmp_path):
    planner = _planner(tmp_path, max_jobs=10, parallel=2)
    a, b = _start(planner), _start(planner)
    request = StopRequest(reason="the job completed (MaxRuntimeReached)")
    planner.stop_job("MaxRuntimeReached", request)
    for trial in (a, b):
        stop_file = planner.job_dir.trial_files(trial.trial_id).attempt(1).stop_request
        assert json.loads(stop_file.read_text())["reason"] == request.reason
    assert planner.next_trial() is None and not planner.done
    planner.record_end(a.trial_id, TrialEnd(state=TrialState.STOPPED, objective=0.4))
    planner.record_end(b.trial_id, TrialEnd(state=TrialState.STOPPED, objective=0.6))
    assert planner.done and planner.stop_reason == "MaxRuntimeReached"
    assert {t: v for t, (_, v) in planner.searcher.observations.items()} == {
        a.trial_id: 0.4,
        b.trial_id: 0.6,
    }
    assert planner.searcher.pending == {}


def test_an_interrupted_trial_is_not_observed_and_runs_again_on_resume(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=2)
    a = _start(planner)
    request = StopRequest(reason="the job was interrupted", cause=EndCause.INTERRUPTED)
    planner.stop_job("Interrupted", request)
    end = TrialEnd(state=TrialState.STOPPED, objective=0.3, cause=EndCause.INTERRUPTED)
    assert planner.record_end(a.trial_id, end) is False
    assert a.trial_id in planner.searcher.pending  # not an observation of its hyperparameters
    planner.close()
    record = summarize_trials(planner.ledger.events())[a.trial_id]
    assert record.state is TrialState.STOPPED and record.resumable

    resumed = _planner(tmp_path, max_jobs=2, parallel=2, state=planner.searcher.state_dict())
    resumed.resume()
    again = _start(resumed)
    assert (again.trial_id, again.attempt) == (a.trial_id, 2)
    assert again.hyperparameters == a.hyperparameters


def test_retryable_failures_are_retried_with_the_same_config_up_to_the_limit(tmp_path):
    planner = _planner(tmp_path, max_jobs=1, parallel=1, retries=1)
    trial = _start(planner)
    killed = TrialEnd(
        state=TrialState.FAILED, objective=None, reason="SIGKILL", cause=EndCause.EXTERNAL
    )
    assert planner.record_end(trial.trial_id, killed) is True
    again = _start(planner)
    assert (again.trial_id, again.attempt) == (trial.trial_id, 2)
    assert again.hyperparameters == trial.hyperparameters
    # the new attempt fences off the old one, wherever it may still run
    old = planner.job_dir.trial_files(trial.trial_id).attempt(1).stop_request
    assert "superseded by attempt 2" in old.read_text()
    assert planner.record_end(again.trial_id, killed) is False  # limit reached
    assert planner.done
    assert planner.searcher.observations[trial.trial_id][1] is None  # observed once, as failed


def test_script_errors_are_not_retried(tmp_path):
    planner = _planner(tmp_path, max_jobs=1, parallel=1, retries=5)
    trial = _start(planner)
    crash = TrialEnd(
        state=TrialState.FAILED, objective=None, reason="exit 3", cause=EndCause.TRAINER
    )
    assert planner.record_end(trial.trial_id, crash) is False
    assert planner.done


def test_openamts_own_failure_stops_the_job_and_the_trial_runs_again(tmp_path):
    planner = _planner(tmp_path, max_jobs=3, parallel=1, retries=5)
    trial = _start(planner)
    broken = TrialEnd(
        state=TrialState.FAILED,
        objective=None,
        reason="openamt could not run the trial: cannot write the trial log",
        cause=EndCause.OPENAMT,
    )
    assert planner.record_end(trial.trial_id, broken) is False
    assert isinstance(planner.fatal_error, TrialInfrastructureError)
    assert "cannot write the trial log" in str(planner.fatal_error)
    assert planner.next_trial() is None and planner.done
    assert summarize_trials(planner.ledger.events())[trial.trial_id].resumable


def test_resume_requeues_running_trials_and_replays_missed_observations(tmp_path):
    planner = _planner(tmp_path, max_jobs=4, parallel=2)
    a, b = _start(planner), _start(planner)
    planner.record_end(a.trial_id, _done(0.9))
    # Crash window: the ledger recorded b's end, the searcher state was not saved after it.
    state_before = planner.searcher.state_dict()
    planner.ledger.append(
        Event.TRIAL_COMPLETED, trial_id=b.trial_id, attempt=1, status="Completed", objective=0.4
    )
    c = _start(planner)  # started, then the driver dies
    planner.flush_state()  # a dead driver writes nothing after its successor starts
    del planner

    state_before["pending"].append([c.trial_id, dict(c.hyperparameters)])
    state_before["num_suggested"] += 1
    resumed = _planner(tmp_path, max_jobs=4, parallel=2, state=state_before)
    resumed.resume()
    assert resumed.searcher.observations[b.trial_id][1] == 0.4  # replayed from the ledger
    again = _start(resumed)
    assert (again.trial_id, again.attempt) == (c.trial_id, 2)
    assert again.hyperparameters == c.hyperparameters
    fresh = _start(resumed)
    assert fresh.trial_id == "trial-0004"
    events = resumed.ledger.events()
    crashed = [e for e in events if e.get("crashed")]
    assert [e["trial_id"] for e in crashed] == [c.trial_id]
    assert crashed[0]["reason"] == INTERRUPTED_REASON


def test_resume_adopts_trials_the_saved_state_never_heard_of(tmp_path):
    """The state is written in the background, so a driver may die with trials in the ledger
    that its saved state lacks: one finished, one running. Resume takes both from the ledger."""
    planner = _planner(tmp_path, max_jobs=4, parallel=2)
    a = _start(planner)
    state_before = planner.searcher.state_dict()  # the last state that reached the disk
    b = _start(planner)
    planner.record_end(a.trial_id, _done(0.9))
    c = _start(planner)
    planner.record_end(b.trial_id, _done(0.4))
    planner.flush_state()  # a dead driver writes nothing after its successor starts
    del planner

    resumed = _planner(tmp_path, max_jobs=4, parallel=2, state=state_before)
    resumed.resume()
    observed = {t: v for t, (_, v) in resumed.searcher.observations.items()}
    assert observed == {a.trial_id: 0.9, b.trial_id: 0.4}
    assert resumed.searcher.observations[b.trial_id][0] == b.hyperparameters
    again = _start(resumed)
    assert (again.trial_id, again.attempt, again.hyperparameters) == (
        c.trial_id,
        2,
        c.hyperparameters,
    )
    fresh = _start(resumed)
    assert fresh.trial_id == "trial-0004"
    tried = [a, b, c]
    assert all(fresh.hyperparameters != t.hyperparameters for t in tried)
    assert resumed.searcher.state_dict()["num_suggested"] == 4
    resumed.close()
    saved = resumed.job_dir.load_searcher_state()
    assert [t for t, _ in saved["pending"]] == [c.trial_id, fresh.trial_id]


def test_a_trial_that_keeps_taking_the_driver_down_is_not_restarted_forever(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=1)
    victim = _start(planner)
    state = planner.searcher.state_dict()
    for crash in range(1, MAX_CRASHED_ATTEMPTS + 1):
        resumed = _planner(tmp_path, max_jobs=2, parallel=1, state=state)
        resumed.resume()
        if crash < MAX_CRASHED_ATTEMPTS:
            again = _start(resumed)  # it starts, then the driver dies again
            assert (again.trial_id, again.attempt) == (victim.trial_id, crash + 1)
        resumed.flush_state()
        state = resumed.searcher.state_dict()
    record = summarize_trials(resumed.ledger.events())[victim.trial_id]
    assert record.state is TrialState.FAILED and record.finished
    assert f"the driver died {MAX_CRASHED_ATTEMPTS} times" in record.reason
    assert _start(resumed).trial_id == "trial-0002"  # the job goes on without it


def test_resume_forgets_suggestions_that_never_started(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=1)
    planner.searcher.suggest("trial-0001")  # suggested, crash before the ledger line
    state = planner.searcher.state_dict()
    resumed = _planner(tmp_path, max_jobs=2, parallel=1, state=state)
    resumed.resume()
    assert dict(resumed.searcher.pending) == {}
    assert resumed.next_trial().trial_id == "trial-0001"


def test_every_start_and_end_is_in_the_ledger_and_stragglers_are_ignored(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=2)
    a, b = _start(planner), _start(planner)
    planner.record_result(a.trial_id, attempt=1, metric="acc", value=0.3, step=1)
    planner.record_result(a.trial_id, attempt=7, metric="acc", value=0.9, step=2)  # not it
    planner.record_result(a.trial_id, attempt=1, metric="acc", value=float("nan"), step=2)
    planner.record_end(a.trial_id, _done(0.3))
    planner.record_end(b.trial_id, TrialEnd(state=TrialState.STOPPED, objective=0.1))
    assert planner.record_end(b.trial_id, _done(0.8)) is False  # an end is recorded once
    trials = summarize_trials(planner.ledger.events())
    assert trials[a.trial_id].history == [(1, 0.3)]  # NaN is stored as null, never a value
    assert trials[b.trial_id].state is TrialState.STOPPED
    assert planner.searcher.observations[b.trial_id][1] == pytest.approx(0.1)


def test_attempts_still_running_when_ray_lets_go_are_recorded_stopped(tmp_path):
    planner = _planner(tmp_path, max_jobs=2, parallel=2)
    a = _start(planner)
    planner.record_result(a.trial_id, attempt=1, metric="acc", value=0.42, step=3)
    request = StopRequest(reason="the job completed (MaxRuntimeReached)")
    planner.stop_job("MaxRuntimeReached", request)
    [(trial_id, end)] = planner.end_unfinished(request)
    assert trial_id == a.trial_id and end.state is TrialState.STOPPED
    assert end.objective == 0.42 and request.reason in end.reason
    assert planner.done and not planner.running
    assert summarize_trials(planner.ledger.events())[a.trial_id].finished
