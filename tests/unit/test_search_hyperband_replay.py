"""The learning-curve replay behind the multi-fidelity benchmark: time order, budget, costs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "learning_curves"))

from simulator import simulate  # noqa: E402
from table import CurveTable  # noqa: E402


def table(seconds: list[float]) -> CurveTable:
    """Three configs of one hyperparameter, 3 epochs; config c reaches (c + 1) / 10 * epoch."""
    accuracy = np.array([[(c + 1) / 10 * e for e in (1, 2, 3)] for c in range(3)])
    return CurveTable(
        name="toy",
        grid={"level": [0.0, 1.0, 2.0]},
        accuracy=accuracy,
        seconds=np.array([[s] * 3 for s in seconds]),
        max_epochs=3,
        min_epochs=1,
        meta={},
    )


class Scripted:
    """Suggests configs in a fixed order and stops trials of config 0 after one epoch."""

    def __init__(self, order: list[int]) -> None:
        self.order = list(order)
        self.events: list[tuple] = []
        self.levels: dict[str, int] = {}

    def suggest(self, trial_id: str) -> dict[str, int] | None:
        if not self.order:
            return None
        self.levels[trial_id] = level = self.order.pop(0)
        self.events.append(("suggest", trial_id, level))
        return {"level": level}

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool:
        self.events.append(("report", trial_id, epoch, round(accuracy, 3)))
        return self.levels[trial_id] != 0

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        self.events.append(("finish", trial_id, epoch, stopped))


def test_reports_arrive_in_time_order_and_a_free_worker_starts_the_next_trial() -> None:
    method = Scripted([2, 0, 1])
    trace = simulate(table([1.0, 5.0, 2.0]), method, workers=2, budget_epochs=100)
    reports = [e[1:3] for e in method.events if e[0] == "report"]
    # t0 (config 2, 2 s/epoch) and t1 (config 0, 1 s/epoch) start together; t1 stops after
    # its first epoch (t=1), t2 (config 1, 5 s/epoch) starts at once and reports at t=6.
    assert reports == [("t1", 1), ("t0", 1), ("t0", 2), ("t2", 1), ("t0", 3), ("t2", 2), ("t2", 3)]
    assert ("finish", "t1", 1, True) in method.events
    assert (
        method.events.index(("suggest", "t2", 1))
        == method.events.index(("finish", "t1", 1, True)) + 1
    )
    assert trace.epochs == list(range(1, 8))
    assert trace.best == pytest.approx([0.1, 0.3, 0.6, 0.6, 0.9, 0.9, 0.9])
    assert trace.trials == 3 and trace.stopped == 1
    assert trace.seconds[-1] == pytest.approx(1 + 3 * 2 + 3 * 5)


def test_the_run_ends_at_the_epoch_budget_or_the_trial_limit() -> None:
    trace = simulate(table([1.0, 1.0, 1.0]), Scripted([1, 1, 1, 1]), workers=1, budget_epochs=5)
    assert trace.epochs[-1] == 5
    limited = simulate(
        table([1.0, 1.0, 1.0]), Scripted([2, 2, 2]), workers=2, budget_epochs=100, max_trials=2
    )
    assert limited.trials == 2 and limited.epochs[-1] == 6
    compact = limited.compact()
    assert compact["best"][-1] == pytest.approx(0.9) and compact["total_epochs"] == 6
