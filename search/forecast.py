"""Promotion by forecast: a second opinion for successive halving from the GP's forecast of
each trial's final value.

ASHA judges a trial on its value at the rung alone, and GP-guided Hyperband fills its rungs
with good configurations, so one that starts a little slower and ends best falls just below
the cut. On the learning-curve tables at 2 in parallel, GP-guided Hyperband proposed the
one digits-CNN configuration that reaches Bayesian@30's quality in 5 of 10 runs and stopped
it at the second rung in 3 of them; on the digits MLP it proposed one of the three that
reach that quality in 6 of 10 runs and stopped it at the second rung in 5
(benchmarks/RESULTS.md).

The model over configuration and resource has seen more than the rung: how far
neighbouring configurations went and how their curves bent. A trial below the cut therefore
goes on when its posterior mean at ``max_resource`` is at least the ``1 - 1/eta`` quantile
of the posterior means of the rung's trials there: among the best ``1/eta`` by forecast if
not by its value. No trial that ASHA promotes is stopped. Asking for the forecast only when
the value alone would stop a trial keeps the usual reports free of any GP work.

It is an option (``HyperbandSearcher(forecast_promotion=True)``), not the default. With a
budget of epochs it pays on the tables at the full budget. A job whose budget is a number of
trials pays for every extra promotion, and on the real digits job it spent 1.8 times the
epochs and reached Bayesian@30's quality later in 4 of 5 seeds.
"""

from __future__ import annotations

import numpy as np

from search.multi_fidelity_gp import Predictor, at_fidelity
from search.successive_halving import cutoff


def forecast_keeps(predictor: Predictor, rung_units: np.ndarray, position: int, eta: int) -> bool:
    """Whether row ``position`` of ``rung_units`` (the unit points of a rung's trials,
    ``m x d``) is forecast among the best ``1/eta`` of them: its posterior mean at full
    fidelity is at least the ``1 - 1/eta`` quantile of theirs."""
    mean, _ = predictor.predict(at_fidelity(rung_units, 1.0))
    return bool(mean[position] >= cutoff(mean.tolist(), eta))
