"""A Gaussian process over configuration and resource, and where to look next with it.

Every rung result of every trial is a training point ``(u, s) -> y``: ``u`` the config's
``d`` unit-cube coordinates, ``s = log(resource) / log(max_resource)`` in ``[0, 1]`` (epochs
on a log scale: learning curves move fastest early) and ``y`` the value, larger is better.
The kernel is an ARD RBF over the ordinal coordinates and ``s`` together (so a product of
a configuration kernel and a resource kernel; BoTorch's dimension-scaled log-normal
lengthscale prior), times a Hamming-distance kernel over categorical coordinates. Its
lengthscale along ``s`` is learned: when low-resource ranks predict high-resource ones,
it is long and a handful of finished trials plus many stopped ones pin down the final
quality; when curves cross, it shortens and the model trusts low rungs less.

The acquisition is log expected improvement at a target resource (see ``HyperbandSearcher``)
over the best posterior mean of the observed configs there. Running trials enter as pending
points by the "kriging believer" rule: the model is conditioned on their posterior mean at
the target resource, which removes the variance around them, so the next config goes
elsewhere. Everything is analytic: no Monte Carlo, no global random state, no
``torch.set_num_threads``, no warning filters (safe in a background thread).

Shapes: ``n`` training points, ``p`` pending, ``m`` candidates, ``d`` tunable parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.special
import scipy.stats
import torch
from botorch.exceptions.errors import InputDataError, ModelFittingError
from botorch.models import SingleTaskGP
from botorch.models.kernels.categorical import CategoricalKernel
from botorch.optim.fit import fit_gpytorch_mll_scipy
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import Kernel, RBFKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

#: Hyperparameter name to its flattened raw values; JSON-friendly.
Hyperparameters = dict[str, list[float]]
#: Yeo-Johnson lambda range: beyond it the transform distorts more than it helps.
YEO_JOHNSON_LAMBDA_RANGE = (-2.0, 4.0)
#: Shortest lengthscale (unit-cube units) the kernel may learn. BoTorch's 0.025 lets
#: rung ranks, which are noisy between neighbours, be fitted as a ridge a few per cent
#: wide; the acquisition then proposes near-copies of one config over and over.
MIN_LENGTHSCALE = 0.1
#: L-BFGS-B iterations when fitting the GP hyperparameters.
FIT_MAX_ITERATIONS = 200


@dataclasses.dataclass(frozen=True)
class FittedModel:
    """A GP conditioned on the training data, and how its outputs were transformed."""

    model: SingleTaskGP
    hyperparameters: Hyperparameters
    train_x: torch.Tensor  # n x (d + 1): unit point, then s
    train_y: torch.Tensor  # n x 1, warped and standardised
    categorical_dims: tuple[int, ...]


def fidelity(resource: float, max_resource: int) -> float:
    """``s`` in ``[0, 1]``: the log of ``resource`` relative to ``log(max_resource)``."""
    return min(1.0, math.log(max(resource, 1.0)) / math.log(max_resource))


def at_fidelity(points: np.ndarray, fidelity: float) -> np.ndarray:
    """Unit points (``m x d``) with a last column ``fidelity``: model inputs, ``m x (d + 1)``."""
    return np.hstack([points, np.full((len(points), 1), fidelity)])


def warp(values: np.ndarray) -> np.ndarray:
    """Standardise, Yeo-Johnson transform (lambda fitted, clipped), standardise again: a
    long tail of diverged runs otherwise squashes the good region into a sliver.

    Raises ``InputDataError`` when the values overflow standardisation.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        scale, centre = float(values.std()), float(values.mean())
    if not (math.isfinite(scale) and math.isfinite(centre)):
        raise InputDataError("objective values overflow standardisation")
    if scale == 0.0:
        return np.zeros_like(values)
    z = (values - centre) / scale
    if len(values) >= 3:
        lam = float(np.clip(scipy.stats.yeojohnson_normmax(z), *YEO_JOHNSON_LAMBDA_RANGE))
        z = scipy.stats.yeojohnson(z, lmbda=lam)
        z = (z - z.mean()) / (float(z.std()) or 1.0)
    return z


def normal_scores(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value (``n``) replaced by the normal quantile of its mid-rank within its group
    (``n`` labels): ``Phi^-1((rank - 0.5) / size)``, ties averaged; a group of one scores 0."""
    scores = np.zeros(len(values))
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        ranks = scipy.stats.rankdata(values[members], method="average")
        scores[members] = scipy.stats.norm.ppf((ranks - 0.5) / len(members))
    return scores


def fit(
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    warp_outputs: bool = True,
    categorical_dims: Sequence[int],
    initial: Mapping[str, list[float]] | None = None,
    optimize: bool = True,
) -> FittedModel:
    """Fit the GP to ``train_x`` (``n x (d + 1)``, the last column ``s``) and values
    ``train_y`` (``n``, larger is better), warped here unless ``warp_outputs=False``. With
    ``optimize=False`` (and ``initial`` given) the hyperparameters are reused and only the
    data is conditioned on.

    One deterministic L-BFGS-B run from ``initial`` (or the priors' modes): no random
    restarts. Raises ``ModelFittingError`` if it fails, BoTorch/GPyTorch errors otherwise.
    """
    x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float64))
    values = np.asarray(train_y, dtype=np.float64)
    if warp_outputs:
        values = warp(values)
    y = torch.from_numpy(values).unsqueeze(-1)
    model = _model(x, y, categorical_dims, initial)
    if optimize or initial is None:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        mll.train()
        result = fit_gpytorch_mll_scipy(mll, options={"maxiter": FIT_MAX_ITERATIONS})
        if not all(math.isfinite(v) for v in _flat(model)):
            raise ModelFittingError(f"GP fit ended with non-finite hyperparameters ({result})")
    model.eval()
    return FittedModel(
        model=model,
        hyperparameters=_hyperparameters_of(model),
        train_x=x,
        train_y=y,
        categorical_dims=tuple(categorical_dims),
    )


class Predictor:
    """Posterior mean and variance of a fitted GP at many points, by direct linear algebra
    (one Cholesky of the ``n x n`` training covariance): scoring thousands of candidates
    costs one ``m x n`` kernel matrix instead of ``m`` batched GPyTorch posteriors."""

    def __init__(self, fitted: FittedModel, x: torch.Tensor, y: torch.Tensor) -> None:
        model = fitted.model
        self._kernel = model.covar_module
        self._mean = float(model.mean_module.constant.detach())
        self._x, self._y = x, y
        with torch.no_grad():
            noise = model.likelihood.noise.detach().reshape(-1)[0]
            covariance = self._kernel(x, x).to_dense() + noise * torch.eye(len(x), dtype=x.dtype)
            self._cholesky = torch.linalg.cholesky(covariance)
            self._alpha = torch.cholesky_solve(y - self._mean, self._cholesky)
        self._fitted = fitted

    @classmethod
    def of(cls, fitted: FittedModel) -> Predictor:
        return cls(fitted, fitted.train_x, fitted.train_y)

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance (each ``m``, warped scale) at ``points`` (``m x (d + 1)``)."""
        x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float64))
        with torch.no_grad():
            cross = self._kernel(x, self._x).to_dense()  # m x n
            mean = self._mean + (cross @ self._alpha).squeeze(-1)
            solved = torch.linalg.solve_triangular(self._cholesky, cross.T, upper=False)
            prior = self._kernel(x, x, diag=True)
            variance = (prior - (solved**2).sum(0)).clamp_min(1e-12)
        return mean.numpy(), variance.numpy()

    def with_pending(self, pending: np.ndarray) -> Predictor:
        """Also conditioned on ``pending`` (``p x (d + 1)``) at its posterior mean
        (kriging believer), with the same hyperparameters."""
        if len(pending) == 0:
            return self
        mean, _ = self.predict(pending)
        x = torch.cat([self._x, torch.from_numpy(np.asarray(pending, dtype=np.float64))])
        y = torch.cat([self._y, torch.from_numpy(mean).unsqueeze(-1)])
        return Predictor(self._fitted, x, y)


def log_expected_improvement(mean: np.ndarray, variance: np.ndarray, best: float) -> np.ndarray:
    """``log E[max(f - best, 0)]`` for ``f ~ N(mean, variance)`` (each ``m``), accurate far
    into the tail (BoTorch's LogEI formulation), so flat regions still rank."""
    std = np.sqrt(variance)
    u = (mean - best) / std
    out = np.empty_like(u)
    upper = u > -1.0
    uu = u[upper]
    out[upper] = np.log(scipy.stats.norm.pdf(uu) + uu * scipy.stats.norm.cdf(uu))
    ul = np.maximum(u[~upper], -1e6)
    log_phi = -0.5 * ul**2 - 0.5 * math.log(2 * math.pi)
    w = np.log(scipy.special.erfcx(-ul / math.sqrt(2)) * np.abs(ul)) + math.log(
        math.sqrt(math.pi / 2)
    )
    out[~upper] = log_phi + np.where(w > -math.log(2), np.log(-np.expm1(w)), np.log1p(-np.exp(w)))
    return out + np.log(std)


def _model(
    x: torch.Tensor,
    y: torch.Tensor,
    categorical_dims: Sequence[int],
    hyperparameters: Mapping[str, list[float]] | None,
) -> SingleTaskGP:
    model = SingleTaskGP(
        x, y, covar_module=_kernel(x.shape[-1], categorical_dims), outcome_transform=None
    )
    if hyperparameters is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                saved = hyperparameters.get(name)
                if saved is not None and len(saved) == parameter.numel():
                    parameter.copy_(torch.tensor(saved, dtype=parameter.dtype).view_as(parameter))
    return model


def _kernel(dimension: int, categorical_dims: Sequence[int]) -> Kernel:
    """ARD RBF over the ordinal coordinates and ``s``, times a categorical kernel."""
    categorical = sorted(set(categorical_dims))
    ordinal = [dim for dim in range(dimension) if dim not in categorical]
    if not categorical:
        return _rbf(dimension, None)
    hamming = CategoricalKernel(
        ard_num_dims=len(categorical),
        active_dims=categorical,
        lengthscale_constraint=GreaterThan(1e-6),
    )
    return _rbf(len(ordinal), ordinal) * hamming


def _rbf(dimension: int, active_dims: Sequence[int] | None) -> RBFKernel:
    """BoTorch's dimension-scaled log-normal lengthscale prior, floor ``MIN_LENGTHSCALE``."""
    prior = LogNormalPrior(loc=math.sqrt(2) + 0.5 * math.log(dimension), scale=math.sqrt(3))
    return RBFKernel(
        ard_num_dims=dimension,
        active_dims=active_dims,
        lengthscale_prior=prior,
        lengthscale_constraint=GreaterThan(
            MIN_LENGTHSCALE, transform=None, initial_value=max(prior.mode, MIN_LENGTHSCALE)
        ),
    )


def _hyperparameters_of(model: torch.nn.Module) -> Hyperparameters:
    return {
        name: [float(v) for v in value.detach().reshape(-1).tolist()]
        for name, value in model.named_parameters()
    }


def _flat(model: torch.nn.Module) -> list[float]:
    return [v for values in _hyperparameters_of(model).values() for v in values]
