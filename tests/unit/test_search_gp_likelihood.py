"""The plain-torch GP loss equals GPyTorch's marginal log likelihood, value and gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.optim.closures import NdarrayOptimizationClosure, get_loss_closure_with_grads
from gpytorch.mlls import ExactMarginalLogLikelihood

from search.gp_likelihood import MarginalLikelihoodLoss
from search.gp_model import _model, fit_gp


def data(dimension: int, categorical_dims: list[int], n: int = 12):
    rng = np.random.default_rng(dimension + len(categorical_dims))
    x = rng.random((n, dimension))
    for dim in categorical_dims:
        x[:, dim] = (rng.integers(0, 3, n) + 0.5) / 3  # bin centres of 3 categories
    y = np.sin(3 * x.sum(axis=1)) + 0.1 * rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    return torch.from_numpy(x), torch.from_numpy(y).unsqueeze(-1)


@pytest.mark.parametrize(("dimension", "categorical_dims"), [(3, []), (4, [1, 3]), (2, [0, 1])])
def test_loss_and_gradient_match_gpytorch(dimension: int, categorical_dims: list[int]) -> None:
    x, y = data(dimension, categorical_dims)
    model = _model(x, y, categorical_dims, None)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    ours = MarginalLikelihoodLoss(model)
    parameters = dict(ours.parameters)
    reference = NdarrayOptimizationClosure(
        get_loss_closure_with_grads(mll, parameters=parameters), parameters
    )
    rng = np.random.default_rng(0)
    start = ours.state()
    for _ in range(3):
        theta = start + 0.3 * rng.random(len(start))  # stays inside the lower bounds
        value, gradient = ours(theta)
        expected_value, expected_gradient = reference(theta)
        assert value == pytest.approx(float(expected_value), rel=1e-7)
        assert np.allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-7)


def test_fit_improves_the_likelihood_and_loads_the_result_into_the_model() -> None:
    x, y = data(3, [2], n=20)
    default = _model(x, y, [2], None)
    before = MarginalLikelihoodLoss(default)(MarginalLikelihoodLoss(default).state())[0]
    model, hyperparameters = fit_gp(x, y, categorical_dims=[2])
    loss = MarginalLikelihoodLoss(model)
    assert loss(loss.state())[0] < before
    refit, same = fit_gp(x, y, categorical_dims=[2], initial=hyperparameters, optimize=False)
    assert same == hyperparameters
    with torch.no_grad():
        assert torch.allclose(model.posterior(x).mean, refit.posterior(x).mean)
