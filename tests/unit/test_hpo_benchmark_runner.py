"""The HPO benchmark's two ways of running parallel trials: synchronous batches, and slots
refilled as soon as a trial ends (as the orchestrator runs them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.hpo.methods import OpenAMT  # noqa: E402
from benchmarks.hpo.problems import PROBLEMS  # noqa: E402
from benchmarks.hpo.runner import (  # noqa: E402
    ALL_SETTINGS,
    run_asynchronously,
    run_in_batches,
    run_task,
)
from benchmarks.hpo_quality import main  # noqa: E402

PROBLEM = PROBLEMS["branin"]


class Recording(OpenAMT):
    """openamt's Random search, recording what the searcher knew at every ask and the
    order in which results came back."""

    def __init__(self) -> None:
        super().__init__(PROBLEM.space, strategy="Random", seed=0, deterministic=True)
        self.asks: list[tuple[int, int]] = []  # (pending, observed) when asked
        self.told: list[str] = []

    def _record(self) -> None:
        searcher = self._searcher
        self.asks.append((len(searcher.pending), len(searcher.observations)))

    def ask(self, count):
        self._record()
        return super().ask(count)

    def ask_one(self):
        self._record()
        return super().ask_one()

    def tell_one(self, token, value):
        self.told.append(token)
        super().tell_one(token, value)


def test_asynchronous_slots_are_refilled_one_at_a_time_with_the_others_pending():
    method = Recording()
    results = run_asynchronously(method, PROBLEM, ALL_SETTINGS["32x8-async"], seed=3)
    assert len(results) == 32
    first_wave = [(pending, 0) for pending in range(8)]
    assert method.asks[:8] == first_wave  # eight started before any result
    # every later config is asked for the moment one trial ends: 7 still run
    assert method.asks[8:] == [(7, k - 7) for k in range(8, 32)]
    assert sorted(method.told, key=lambda t: int(t[1:])) == [f"t{i}" for i in range(32)]
    assert method.told != [f"t{i}" for i in range(32)]  # durations differ, so ends reorder


def test_synchronous_batches_see_whole_batches_only():
    method = Recording()
    results = run_in_batches(method, PROBLEM, ALL_SETTINGS["32x8"], seed=3)
    assert len(results) == 32
    assert method.asks == [(0, 0), (0, 8), (0, 16), (0, 24)]


def test_a_run_is_reproducible_and_picks_its_best_observation():
    first = run_task(("branin", "random", "30x2-async", 5))
    again = run_task(("branin", "random", "30x2-async", 5))
    assert first["observed"] == again["observed"]
    assert len(first["observed"]) == 30
    assert first["picked_true_value"] == min(first["observed"])  # branin is noise-free


def test_asynchronous_settings_refuse_methods_without_an_asynchronous_interface(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--settings", "32x8-async", "--methods", "openamt", "hebo"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "--methods hebo" in error and "32x8-async" in error and "run only openamt" in error
