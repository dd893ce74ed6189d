"""Promotion by forecast: the GP keeps slow starters that a rung's cut would stop."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from search import ContinuousParameter, SearcherOptionError, SearchSpace, make_searcher
from search.forecast import forecast_keeps
from search.hyperband import HyperbandSearcher
from search.multi_fidelity_gp import Predictor, fit
from search.successive_halving import Decision

MAX_EPOCHS = 9


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def slow_start(config: dict, epoch: int) -> float:
    """Large ``x`` starts worst and ends best: the rung's order is the reverse of the final."""
    x, progress = config["x"], epoch / MAX_EPOCHS
    return (1 - x) * (1 - progress) + x * progress


def build(**options) -> HyperbandSearcher:
    """Warm-started with final values, so the model knows that large ``x`` ends best."""
    priors = [({"x": x}, x) for x in (0.05, 0.3, 0.6, 0.95)]
    searcher = make_searcher(
        "Hyperband",
        SearchSpace({"x": ContinuousParameter(0.0, 1.0)}),
        seed=4,
        min_resource=1,
        max_resource=MAX_EPOCHS,
        prior_observations=priors,
        **options,
    )
    assert isinstance(searcher, HyperbandSearcher)
    return searcher


def run_trial(searcher: HyperbandSearcher, trial_id: str) -> tuple[float, int]:
    """The trial's ``x`` and the epoch it ended at."""
    config = searcher.suggest(trial_id)
    for epoch in range(1, MAX_EPOCHS + 1):
        value = slow_start(config, epoch)
        if searcher.report(trial_id, epoch, value) is not Decision.CONTINUE:
            break
    searcher.observe(trial_id, value)
    return config["x"], epoch


def test_a_rung_member_is_kept_when_its_forecast_final_value_is_among_the_best() -> None:
    units = np.linspace(0.0, 1.0, 11)[:, None]
    x = np.vstack(
        [np.hstack([units, np.zeros_like(units)]), np.hstack([units, np.ones_like(units)])]
    )
    y = np.concatenate([1 - units[:, 0], units[:, 0]])  # order reversed between s=0 and s=1
    predictor = Predictor.of(fit(x, y, categorical_dims=()))
    rung = np.array([[0.1], [0.2], [0.3], [0.9]])
    assert forecast_keeps(predictor, rung, position=3, eta=3)  # last at the rung, best at the end
    assert not forecast_keeps(predictor, rung, position=0, eta=3)  # first at the rung only


def test_the_forecast_keeps_a_slow_starter_that_the_rung_alone_stops(caplog) -> None:
    caplog.set_level(logging.INFO, logger="search.hyperband")
    forecast, rank_only = build(forecast_promotion=True), build()
    for i in range(12):
        kept, stopped = run_trial(forecast, f"t{i}"), run_trial(rank_only, f"t{i}")
        assert kept[0] == stopped[0]  # the same suggestions up to the first difference
        if kept != stopped:
            break
    else:
        pytest.fail("the forecast never changed a decision")
    assert forecast.kept_by_forecast[0] == f"t{i}" and rank_only.kept_by_forecast == ()
    assert kept[1] > stopped[1]  # trained past the rung that stopped it without the forecast
    assert kept[0] > 0.5  # a slow starter: its final value is better than its rung value
    assert f"Hyperband keeps t{i} past a rung's cut on the model's forecast" in caplog.messages


def test_forecasts_survive_a_restore_and_old_states_resume_without_them() -> None:
    searcher = build(forecast_promotion=True)
    for i in range(8):
        run_trial(searcher, f"t{i}")
    assert searcher.kept_by_forecast
    restored = build(forecast_promotion=True)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    assert restored.kept_by_forecast == searcher.kept_by_forecast
    for i in range(8, 11):
        assert run_trial(restored, f"t{i}") == run_trial(searcher, f"t{i}")

    original = build()
    for i in range(6):
        run_trial(original, f"t{i}")
    state = json.loads(json.dumps(original.state_dict()))
    del state["extra"]["options"]["forecast_promotion"], state["extra"]["kept_by_forecast"]
    old = build(forecast_promotion=True)  # built with forecasts, restores the saved rule
    old.load_state_dict(state)
    assert old.state_dict()["extra"]["options"]["forecast_promotion"] is False
    for i in range(6, 10):
        assert run_trial(old, f"t{i}") == run_trial(original, f"t{i}")
    assert old.kept_by_forecast == ()


def test_a_forecast_that_cannot_be_computed_leaves_the_rung_to_decide_and_counts_it() -> None:
    searcher = build(forecast_promotion=True)
    for i in range(3):
        run_trial(searcher, f"t{i}")
    searcher.suggest("huge")
    assert searcher.report("huge", 1, 1e308) is Decision.CONTINUE  # tops the rung
    searcher.suggest("tiny")  # falls back to random itself: the values overflow the model
    before = searcher.fallback_count
    assert searcher.report("tiny", 1, -1e308) is Decision.STOP  # overflows the model's scaling
    assert searcher.fallback_count == before + 1
    assert "tiny" not in searcher.kept_by_forecast


@pytest.mark.parametrize(
    "options, message",
    [
        ({"forecast_promotion": "yes"}, "forecast_promotion='yes' must be True or False"),
        ({"forecast_promotion": True, "guided": False}, "needs the joint GP .* guided=False"),
        ({"forecast_promotion": True, "model": "rung"}, "needs the joint GP .* model='rung'"),
    ],
)
def test_forecasts_need_the_joint_model(options, message) -> None:
    with pytest.raises(SearcherOptionError, match=message):
        build(**options)


def test_forecasts_are_off_by_default() -> None:
    searcher = build()
    for i in range(8):
        run_trial(searcher, f"t{i}")
    assert searcher.state_dict()["extra"]["options"]["forecast_promotion"] is False
    assert searcher.kept_by_forecast == ()
