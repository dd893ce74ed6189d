"""Fitting the Gaussian-process surrogate of the Bayesian searcher (BoTorch, float64, CPU).

Inputs are unit-cube points (``n x d``); outputs arrive already standardised by the caller
(``n x 1``), which keeps the acquisition's smoothing constants scale-free. Ordinal
dimensions (continuous and integer) get an ARD RBF kernel with BoTorch's dimension-scaled
log-normal lengthscale prior; categorical dimensions, when present, multiply it by a
Hamming-distance ``CategoricalKernel`` (one lengthscale per categorical), so categories
are never treated as ordered numbers. (BoTorch's ``MixedSingleTaskGP`` sum-plus-product
kernel took 5-20x more optimiser steps to fit for no gain on our benchmarks.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.kernels.categorical import CategoricalKernel
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel
from gpytorch.mlls import ExactMarginalLogLikelihood

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
    covariance = _kernel(train_x.shape[-1], categorical_dims)
    model = SingleTaskGP(train_x, train_y, covar_module=covariance, outcome_transform=None)
    if initial is not None:
        _load_hyperparameters(model, initial)
    if optimize or initial is None:
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return model, hyperparameters_of(model)


def _kernel(dimension: int, categorical_dims: Sequence[int]) -> Kernel:
    """RBF over the ordinal dimensions, times a categorical kernel over the others."""
    ordinal_dims = [dim for dim in range(dimension) if dim not in set(categorical_dims)]
    if not categorical_dims:
        return get_covar_module_with_dim_scaled_prior(ard_num_dims=dimension)
    categorical = CategoricalKernel(
        ard_num_dims=len(categorical_dims),
        active_dims=list(categorical_dims),
        lengthscale_constraint=GreaterThan(1e-6),
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
