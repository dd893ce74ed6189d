"""The ledger: durable appends, torn-tail recovery, refusal on damage, folding into trials."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from orchestrator.store.ledger import Event, Ledger, LedgerCorruptError, read_events
from orchestrator.store.records import best_trial, summarize_trials
from orchestrator.trial.outcome import TrialState


def test_append_then_read_round_trips(tmp_path):
    ledger = Ledger(job_dir=tmp_path)
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0001", attempt=1, config={"x": 0.5})
    ledger.append(
        Event.TRIAL_COMPLETED, trial_id="trial-0001", attempt=1, status="Completed", objective=0.8
    )
    events = read_events(ledger.path)
    assert [e["event"] for e in events] == ["trial_started", "trial_completed"]
    assert events[0]["config"] == {"x": 0.5}
    assert all(isinstance(e["time"], float) for e in events)


def test_nan_is_refused_rather_than_written(tmp_path):
    ledger = Ledger(job_dir=tmp_path)
    with pytest.raises(ValueError):
        ledger.append(Event.TRIAL_RESULT, trial_id="t", value=float("nan"))


def test_torn_last_line_is_ignored_on_read_and_cut_on_open(tmp_path):
    ledger = Ledger(job_dir=tmp_path)
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0001", attempt=1, config={})
    with open(ledger.path, "a") as handle:
        handle.write('{"event": "trial_completed", "trial_id": "tri')  # crash mid-write
    assert len(read_events(ledger.path)) == 1
    reopened = Ledger(job_dir=tmp_path)
    reopened.append(Event.TRIAL_STARTED, trial_id="trial-0002", attempt=1, config={})
    lines = ledger.path.read_text().splitlines()
    assert [json.loads(line)["trial_id"] for line in lines] == ["trial-0001", "trial-0002"]


def test_damage_before_the_end_refuses_to_load(tmp_path):
    ledger = Ledger(job_dir=tmp_path)
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0001", attempt=1, config={})
    with open(ledger.path, "a") as handle:
        handle.write("garbage that is not json\n")
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0002", attempt=1, config={})
    with pytest.raises(LedgerCorruptError, match="line 2"):
        read_events(ledger.path)


def _events(*rows):
    return [{"time": float(i), **row} for i, row in enumerate(rows)]


def test_summary_follows_retries_and_keeps_last_attempt():
    events = _events(
        {"event": "trial_started", "trial_id": "a", "attempt": 1, "config": {"x": 1}},
        {"event": "trial_result", "trial_id": "a", "metric": "acc", "value": 0.1, "step": 1},
        {
            "event": "trial_completed",
            "trial_id": "a",
            "status": "Failed",
            "reason": "killed by SIGKILL",
            "will_retry": True,
        },
        {"event": "trial_started", "trial_id": "a", "attempt": 2, "config": {"x": 1}},
        {"event": "trial_result", "trial_id": "a", "metric": "acc", "value": 0.7, "step": 1},
        {"event": "trial_result", "trial_id": "a", "metric": "loss", "value": 3.0, "step": 1},
        {
            "event": "trial_completed",
            "trial_id": "a",
            "status": "Completed",
            "objective": 0.7,
            "node_id": "n1",
        },
        {"event": "trial_started", "trial_id": "b", "attempt": 1, "config": {"x": 2}},
    )
    trials = summarize_trials(events, objective_metric_name="acc")
    assert list(trials) == ["a", "b"]
    a, b = trials["a"], trials["b"]
    assert (a.state, a.objective, a.attempts, a.node_id) == (TrialState.COMPLETED, 0.7, 2, "n1")
    assert a.history == [(1, 0.7)]
    assert a.duration_s == pytest.approx(6.0)
    assert b.state is TrialState.RUNNING and not b.state.finished


def test_a_retrying_trial_is_still_running():
    events = _events(
        {"event": "trial_started", "trial_id": "a", "attempt": 1, "config": {}},
        {"event": "trial_completed", "trial_id": "a", "status": "Failed", "will_retry": True},
    )
    assert summarize_trials(events)["a"].state is TrialState.RUNNING


@pytest.mark.parametrize(("maximize", "expected"), [(True, "b"), (False, "a")])
def test_best_trial_respects_direction_and_ignores_failures(maximize, expected):
    events = _events(
        {"event": "trial_started", "trial_id": "a", "attempt": 1, "config": {}},
        {"event": "trial_completed", "trial_id": "a", "status": "Completed", "objective": 0.2},
        {"event": "trial_started", "trial_id": "b", "attempt": 1, "config": {}},
        {"event": "trial_completed", "trial_id": "b", "status": "Stopped", "objective": 0.9},
        {"event": "trial_started", "trial_id": "c", "attempt": 1, "config": {}},
        {"event": "trial_completed", "trial_id": "c", "status": "Failed", "objective": None},
    )
    best = best_trial(summarize_trials(events), maximize=maximize)
    assert best is not None and best.trial_id == expected


def _fill(directory: Path) -> Path:
    """Fill the file system holding `directory` to the last byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError:
                continue
    return filler


def test_a_failed_append_leaves_whole_lines_and_the_ledger_refuses_more(tmp_path, mount_tmpfs):
    disk = mount_tmpfs(tmp_path / "disk", size="64k")
    ledger = Ledger(job_dir=disk)
    ledger.append(Event.JOB_STARTED, run=1)
    before = (disk / "ledger.jsonl").read_bytes()
    filler = _fill(disk)
    big = "x" * 20_000  # a line longer than any space left
    with pytest.raises(OSError) as caught:
        ledger.append(Event.TRIAL_STARTED, trial_id="trial-0001", attempt=1, config={"b": big})
    assert caught.value.errno == errno.ENOSPC
    assert (disk / "ledger.jsonl").read_bytes() == before  # cut back to the last whole line

    filler.unlink()  # space again, but this driver must not write on
    with pytest.raises(OSError) as again:
        ledger.append(Event.JOB_INTERRUPTED, finished=0)
    assert again.value is caught.value
    resumed = Ledger(job_dir=disk)  # the next driver starts from a whole file
    resumed.append(Event.JOB_STARTED, run=2)
    assert [e["event"] for e in resumed.events()] == ["job_started", "job_started"]
