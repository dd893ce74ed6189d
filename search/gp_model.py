"""Fitting the Gaussian-process surrogate of the Bayesian searcher (BoTorch, float64, CPU).

Inputs are unit-cube points (``n x d``); outputs arrive already standardised by the caller
(``n x 1``), which keeps the acquisition's smoothing constants scale-free. Ordinal
dimensions (continuous and integer) get an ARD RBF kernel with BoTorch's dimension-scaled
log-normal lengthscale prior; categorical dimensions, when present, multiply it by a
Hamming-distance ``CategoricalKernel`` (one lengthscale per categorical), so categories
are never treated as ordered numbers. Its lengthscales have a log-normal prior around 1
(``CATEGORICAL_LENGTHSCALE_PRIOR``): without it, a few dozen points of a 10-D mixed function
drove one categorical's lengthscale to 0.008 (its categories unrelated, so what was learnt
about the other parameters in one category was lost for the others) and another's to 4e6
(a 0.6 additive effect declared irrelevant), and the search spent 20 of 32 trials in one
category pair. (BoTorch's ``MixedSingleTaskGP`` sum-plus-product
kernel took 5-20x more optimiser steps to fit for no gain on our benchmarks.)

The marginal likelihood is maximised with SciPy's TNC called directly on a plain
torch version of the loss (``gp_likelihood``), not through ``fit_gpytorch_mll``: that
wrapper changes process-wide state (warning filters, BLAS thread limits) and, on a failed
attempt, re-initialises from priors with torch's global generator, none of which may
happen while another thread works; and GPyTorch's own loss costs several times more.
Failure is decided from the result instead: a non-finite optimum raises
``ModelFittingError``; a warm-started fit that fails is retried once from the defaults.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.optimize
import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.models import SingleTaskGP
from botorch.models.kernels.categorical import CategoricalKernel
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.optim.utils import get_parameters_and_bounds
from botorch.optim.utils.numpy_utils import get_bounds_as_ndarray
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.errors import NanError, NotPSDError

from search.gp_likelihood import MarginalLikelihoodLoss

logger = logging.getLogger(__name__)

#: Loss evaluations per fit (warm-started fits converge in a few dozen).
MAX_FIT_EVALUATIONS = 200

#: ``(loc, scale)`` of the log-normal prior on categorical lengthscales: 95% of its mass lies
#: in 0.38-2.7, which puts two points that differ in one of two categoricals at a
#: correlation of 0.26-0.83. Chosen on the HPO benchmark's mixed problems (scales 0.25, 0.5
#: and 1 and a loc of 0.5 and -0.5 tried).
CATEGORICAL_LENGTHSCALE_PRIOR = (0.0, 0.5)

#: Hyperparameter name to its flattened raw values; JSON-friendly.
Hyperparameters = dict[str, list[float]]


def fit_gp(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    *,
    categorical_dims: Sequence[int],
    initial: Mapping[str, list[float]] | None = None,
    optimize: bool = True,
) -> tuple[SingleTaskGP, Hyperparameters]:
    """Fit a GP to ``train_x`` (``n x d``) and standardised ``train_y`` (``n x 1``) by
    maximising the marginal likelihood (with priors), starting from ``initial``
    hyperparameters when given; with ``optimize=False`` the model just conditions on the
    data with the ``initial`` hyperparameters. Returns the model and its hyperparameters.

    Raises BoTorch/GPyTorch errors (``ModelFittingError``, ``NotPSDError``, ...) on failure.
    """
    model = _model(train_x, train_y, categorical_dims, initial)
    if optimize or initial is None:
        try:
            _maximize_marginal_likelihood(model)
        except (ModelFittingError, NotPSDError, NanError) as error:
            if initial is None:
                raise
            logger.debug("warm-started GP fit failed (%s); refitting from defaults", error)
            model = _model(train_x, train_y, categorical_dims, None)
            _maximize_marginal_likelihood(model)
    model.eval()
    return model, hyperparameters_of(model)


def _model(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    categorical_dims: Sequence[int],
    initial: Mapping[str, list[float]] | None,
) -> SingleTaskGP:
    covariance = _kernel(train_x.shape[-1], categorical_dims)
    model = SingleTaskGP(train_x, train_y, covar_module=covariance, outcome_transform=None)
    if initial is not None:
        _load_hyperparameters(model, initial)
    return model


def _maximize_marginal_likelihood(model: SingleTaskGP) -> None:
    """Set ``model``'s hyperparameters to a maximum of the (prior-penalised) marginal
    likelihood, searched from their current values within BoTorch's parameter bounds.
    Raises ``ModelFittingError`` when the optimum is not finite.

    SciPy's TNC (bounded truncated Newton) rather than L-BFGS-B: the same optima here,
    and it never calls BLAS, whereas L-BFGS-B's BLAS threads wait for busy cores (8 ms
    an iteration instead of 0.05 on a loaded 2-core machine) and limiting them would be
    a process-wide change."""
    loss = MarginalLikelihoodLoss(model)
    parameters = dict(loss.parameters)
    _, bounds = get_parameters_and_bounds(model)  # named as loss.parameters are
    result = scipy.optimize.minimize(
        loss,
        loss.state(),
        jac=True,
        bounds=get_bounds_as_ndarray(parameters, bounds),
        method="TNC",
        options={"maxfun": MAX_FIT_EVALUATIONS},
    )
    if not (math.isfinite(float(result.fun)) and np.isfinite(result.x).all()):
        raise ModelFittingError(f"GP marginal likelihood fit ended at {result.fun}")
    loss.load(np.asarray(result.x))
    if not result.success:
        logger.debug("GP fit stopped early: %s", result.message)


def _kernel(dimension: int, categorical_dims: Sequence[int]) -> Kernel:
    """RBF over the ordinal dimensions, times a categorical kernel over the others."""
    ordinal_dims = [dim for dim in range(dimension) if dim not in set(categorical_dims)]
    if not categorical_dims:
        return get_covar_module_with_dim_scaled_prior(ard_num_dims=dimension)
    loc, scale = CATEGORICAL_LENGTHSCALE_PRIOR
    categorical = CategoricalKernel(
        ard_num_dims=len(categorical_dims),
        active_dims=list(categorical_dims),
        lengthscale_constraint=GreaterThan(1e-6),
        lengthscale_prior=LogNormalPrior(loc, scale),
    )
    if not ordinal_dims:
        return categorical
    ordinal = get_covar_module_with_dim_scaled_prior(
        ard_num_dims=len(ordinal_dims), active_dims=ordinal_dims
    )
    return ordinal * categorical


def hyperparameters_of(model: torch.nn.Module) -> Hyperparameters:
    """The model's raw hyperparameters as plain lists of floats."""
    return {
        name: [float(v) for v in value.detach().reshape(-1).tolist()]
        for name, value in model.named_parameters()
    }


def _load_hyperparameters(model: torch.nn.Module, values: Mapping[str, list[float]]) -> None:
    """Copy matching raw hyperparameters into ``model`` (others keep their defaults)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            saved = values.get(name)
            if saved is not None and len(saved) == parameter.numel():
                parameter.copy_(torch.tensor(saved, dtype=parameter.dtype).view_as(parameter))
