"""Suggesting one trial ahead in a background thread, with a real BoTorch searcher."""

from __future__ import annotations

import functools
import pickle
import threading
import time

import pytest
from ray import cloudpickle

from orchestrator.control.planner import TrialPlanner, next_trial_name
from orchestrator.control.suggest_ahead import START_QUIET_S, SuggestAhead, quiet_before_suggesting
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Ledger
from orchestrator.trial.outcome import TrialEnd, TrialState
from search import BayesianSearcher, SearchSpace, make_searcher
from search.gp_model import fit_gp

SPACE = SearchSpace.from_config(
    {
        "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
        "y": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
    }
)


def _objective(config):
    return -((config["x"] - 0.3) ** 2) - (config["y"] - 0.6) ** 2


def _bayesian():
    return make_searcher("Bayesian", SPACE, seed=1, initial_design_size=3)


def _wrapped(searcher, parallel=2):
    return SuggestAhead(searcher, successor=next_trial_name, max_parallel_jobs=parallel)


def _run_instant_trials(ahead: SuggestAhead, count: int) -> list[dict]:
    """Suggest and observe `count` trials that take no time, two at a time."""
    configs = []
    running: list[str] = []
    for number in range(1, count + 1):
        trial_id = f"trial-{number:04d}"
        config = ahead.suggest(trial_id)
        configs.append(config)
        running.append(trial_id)
        if len(running) == 2:
            oldest = running.pop(0)
            ahead.observe(oldest, _objective(configs[int(oldest[-4:]) - 1]))
    return configs


def test_runs_ahead_when_suggestions_cost_more_than_trials_and_hands_out_the_prefetch():
    ahead = _wrapped(_bayesian())
    configs = _run_instant_trials(ahead, 10)
    assert ahead.running_ahead  # GP suggestions (tenths of a second) vs trials of ~0 s
    assert ahead.prefetched >= 5
    keys = {(c["x"], c["y"]) for c in configs}
    assert len(keys) == 10  # no duplicates, prefetched or not
    assert all(0.0 <= c["x"] <= 1.0 and 0.0 <= c["y"] <= 1.0 for c in configs)
    ahead.close()  # waits for the background computation of trial-0011, then forgets it
    assert len(ahead.compute_seconds) == 11
    assert list(ahead.pending) == ["trial-0010"]  # handed out, never observed
    assert "trial-0011" not in ahead.observations


def test_one_trial_at_a_time_never_runs_ahead_and_matches_the_bare_searcher():
    ahead = _wrapped(_bayesian(), parallel=1)
    bare = _bayesian()
    for number in range(1, 7):
        trial_id = f"trial-{number:04d}"
        config = ahead.suggest(trial_id)
        assert config == bare.suggest(trial_id)
        ahead.observe(trial_id, _objective(config))
        bare.observe(trial_id, _objective(config))
    assert not ahead.running_ahead and ahead.prefetched == 0
    assert ahead.state_dict()["pending"] == []


def test_cheap_suggestions_with_long_trials_are_computed_when_asked():
    ahead = _wrapped(make_searcher("Random", SPACE, seed=1))
    for number in range(1, 6):
        trial_id = f"trial-{number:04d}"
        ahead.suggest(trial_id)
        time.sleep(0.2)
        ahead.observe(trial_id, 0.5)
    assert not ahead.running_ahead and ahead.prefetched == 0
    assert list(ahead.pending) == []


def test_a_different_trial_id_discards_the_prefetch():
    ahead = _wrapped(_bayesian())
    _run_instant_trials(ahead, 6)
    assert ahead.running_ahead
    ahead.suggest("trial-0100")  # not trial-0007, which was computed ahead
    assert "trial-0007" not in ahead.pending and "trial-0100" in ahead.pending
    ahead.close()
    assert len(ahead.compute_seconds) == 6 + 3  # trial-0007, trial-0100 and trial-0101 too


def test_pickles_while_running_ahead_and_the_copy_suggests():
    """Ray pickles the search algorithm (and so this wrapper) with its experiment state."""
    ahead = _wrapped(_bayesian())
    _run_instant_trials(ahead, 6)
    assert ahead.running_ahead
    copy = pickle.loads(cloudpickle.dumps(ahead))
    assert copy.suggest("trial-0100") is not None
    copy.close()
    ahead.close()


class Boom(Exception):
    """Not a modelling error: the searcher lets it through."""


def test_errors_in_the_background_surface_at_the_next_suggest():
    failures = {"on": False}

    def fitter(*args, **kwargs):
        if failures["on"]:
            raise Boom
        return fit_gp(*args, **kwargs)

    ahead = _wrapped(
        BayesianSearcher(space=SPACE, seed=1, initial_design_size=3, model_fitter=fitter)
    )
    _run_instant_trials(ahead, 6)
    assert ahead.running_ahead
    ahead.close()  # settle, then fail the next background computation
    ahead.suggest("trial-0007")
    ahead.observe("trial-0006", 0.1)
    ahead.settle()  # trial-0008, computed before the failures start
    failures["on"] = True
    ahead.suggest("trial-0008")  # starts trial-0009 in the background, which fails
    with pytest.raises(Boom):
        ahead.suggest("trial-0009")


def test_observing_while_the_background_thread_computes_is_serialised():
    ahead = _wrapped(_bayesian())
    _run_instant_trials(ahead, 8)
    assert ahead.running_ahead
    errors = []

    def observe_all():
        try:
            for trial_id in list(ahead.pending):
                if trial_id != "trial-0009":
                    ahead.observe(trial_id, 0.0)
        except Exception as error:  # pragma: no cover - the assertion below reports it
            errors.append(error)

    thread = threading.Thread(target=observe_all)
    thread.start()
    thread.join(timeout=30)
    assert errors == []
    assert ahead.suggest("trial-0009") is not None
    assert ahead.prefetched >= 1
    ahead.close()


def test_planner_with_suggest_ahead_saves_no_prefetched_trial_at_the_end(tmp_path):
    job_dir = JobDir(path=tmp_path)
    planner = TrialPlanner(
        searcher=_bayesian(),
        ledger=Ledger(job_dir=tmp_path),
        job_dir=job_dir,
        max_jobs=9,
        max_parallel_jobs=2,
    )
    while not planner.done:
        while (assignment := planner.next_trial()) is not None:
            planner.trial_started(assignment.trial_id)
        oldest = next(iter(planner.running.values()))
        planner.record_end(
            oldest.trial_id,
            TrialEnd(state=TrialState.COMPLETED, objective=_objective(oldest.hyperparameters)),
        )
    assert planner.searcher.prefetched >= 3
    planner.close()
    state = job_dir.load_searcher_state()
    assert state["pending"] == []
    assert len(state["observations"]) == 9
    assert len({(c["x"], c["y"]) for _, c, _ in state["observations"]}) == 9


def test_results_are_recorded_without_waiting_for_a_background_computation():
    gate = {"on": False}
    entered, release = threading.Event(), threading.Event()

    def fitter(*args, **kwargs):
        if gate["on"]:
            entered.set()
            release.wait(30)
        return fit_gp(*args, **kwargs)

    ahead = _wrapped(
        BayesianSearcher(space=SPACE, seed=1, initial_design_size=3, model_fitter=fitter)
    )
    _run_instant_trials(ahead, 6)
    assert ahead.running_ahead
    ahead.settle()
    assert "trial-0007" in ahead.pending
    gate["on"] = True
    ahead.suggest("trial-0007")  # handed out at once; trial-0008 now blocks in the fitter
    assert entered.wait(30)
    started = time.monotonic()
    ahead.observe("trial-0006", 0.1)
    snapshot = ahead.state_dict()
    assert time.monotonic() - started < 5  # neither waited for the fitter (30 s)
    assert "trial-0006" in dict(snapshot["pending"])  # the last snapshot, before the result
    release.set()
    ahead.close()
    assert ahead.observations["trial-0006"][1] == 0.1
    assert "trial-0006" in {trial_id for trial_id, _, _ in ahead.state_dict()["observations"]}


def test_nothing_is_computed_ahead_past_the_last_trial():
    ahead = SuggestAhead(
        _bayesian(),
        successor=functools.partial(next_trial_name, max_jobs=6),
        max_parallel_jobs=2,
    )
    _run_instant_trials(ahead, 6)
    assert ahead.running_ahead
    ahead.close()
    assert len(ahead.compute_seconds) == 6  # no seventh suggestion, used or wasted
    assert next_trial_name("trial-0006", max_jobs=6) is None
    assert next_trial_name("trial-0005", max_jobs=6) == "trial-0006"


def test_hyperband_stop_decisions_do_not_wait_for_a_suggestion_being_computed(tmp_path):
    """Each epoch's result asks successive halving whether to stop; while the wrapper is busy
    with a GP suggestion (its lock held), the answer must still come at once."""
    from orchestrator.control.completion import CompletionRules
    from orchestrator.control.job_control import JobControl

    space = SearchSpace.from_config({**dict(SPACE.to_config()), "epochs": 9})
    planner = TrialPlanner(
        searcher=make_searcher("Hyperband", space, seed=1, max_resource=9),
        ledger=Ledger(job_dir=tmp_path),
        job_dir=JobDir(path=tmp_path),
        max_jobs=8,
        max_parallel_jobs=2,
    )
    control = JobControl(planner=planner, rules=CompletionRules(maximize=True), hyperband=True)
    for _ in range(2):
        planner.trial_started(planner.next_trial().trial_id)
    first, second = planner.running
    answers = []
    with planner.searcher._lock:  # a suggestion is being computed in another thread
        asker = threading.Thread(
            target=lambda: answers.extend(
                [
                    control.should_stop_trial(first, epoch=1, value=0.9),
                    control.should_stop_trial(second, epoch=1, value=0.1),
                    control.should_stop_trial("trial-0099", epoch=1, value=0.5),
                ]
            )
        )
        asker.start()
        asker.join(timeout=5)
        assert not asker.is_alive(), "the stop decision waited for the suggestion"
    assert answers[0] is None and answers[2] is None  # the better one goes on; unknown: no-op
    assert answers[1] is not None and "Hyperband" in answers[1].reason
    planner.close()


class _SteppingClock:
    """Each reading is a second after the last: the stand-in trials take about 3 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _timed_bayesian(calls: list[float]) -> BayesianSearcher:
    """A real searcher whose GP fits record when they begin, and take 0.1 s at least, so that
    suggestions cost more than 2% of the trials and are computed ahead."""

    def fitter(*args, **kwargs):
        calls.append(time.monotonic())
        time.sleep(0.1)
        return fit_gp(*args, **kwargs)

    return BayesianSearcher(space=SPACE, seed=1, initial_design_size=3, model_fitter=fitter)


def test_the_suggestion_ahead_waits_while_the_trial_just_handed_out_starts():
    calls: list[float] = []
    ahead = SuggestAhead(
        _timed_bayesian(calls),
        successor=next_trial_name,
        max_parallel_jobs=2,
        clock=_SteppingClock(),
    )
    _run_instant_trials(ahead, 6)
    assert ahead.running_ahead
    ahead.settle()
    fits = len(calls)
    handed_out = time.monotonic()
    ahead.suggest("trial-0007")  # trial-0008 is computed ahead, after the quiet wait
    give_up = time.monotonic() + 30
    while len(calls) == fits and time.monotonic() < give_up:  # (settle() would end the wait)
        time.sleep(0.01)
    assert len(calls) > fits
    assert calls[-1] - handed_out >= START_QUIET_S
    ahead.suggest("trial-0008")
    asked = time.monotonic()
    ahead.suggest("trial-0009")  # asked at once: the wait ends, trial-0009 is computed now
    assert calls[-1] - asked < START_QUIET_S
    ahead.close()


@pytest.mark.parametrize(
    ("mean_trial_s", "mean_suggest_s", "parallel", "quiet_s"),
    [
        (600.0, 0.1, 8, START_QUIET_S),  # long trials: the whole wait
        (1.0, 0.1, 2, START_QUIET_S),  # a slot frees every 0.5 s: 0.3 s to spare
        (1.0, 0.2, 4, 0.0),  # a slot frees every 0.25 s: no time to spare
        (0.5, 0.05, 2, 0.15),  # 0.25 s per slot, 0.1 s for the suggestion
    ],
)
def test_the_quiet_wait_leaves_time_to_finish_before_the_next_slot_frees(
    mean_trial_s, mean_suggest_s, parallel, quiet_s
):
    assert quiet_before_suggesting(
        mean_trial_s=mean_trial_s, mean_suggest_s=mean_suggest_s, parallel=parallel
    ) == pytest.approx(quiet_s)
