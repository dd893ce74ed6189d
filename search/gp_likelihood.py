"""The GP's training loss in NumPy with analytic gradients: the same number as GPyTorch's
``ExactMarginalLogLikelihood`` (with the model's priors), at a small fraction of the cost.

A suggestion fits a GP to a few dozen points. Through GPyTorch's modules, lazy tensors,
prior distributions and autograd one loss-and-gradient evaluation cost 3-5 ms, and a fit
takes 20-70 of them, which made fitting most of a suggestion's time. Here the covariance
is built directly from the model's own parameters, constraints and priors, for the
kernels ``gp_model`` builds (an ARD RBF kernel, BoTorch's ``CategoricalKernel``, or their
product, each on its active dimensions), and the gradient is the textbook
``0.5 tr((K^-1 - a a^T) dK)`` with ``a = K^-1 (y - c)``. The two agree to rounding (see
``tests/unit/test_search_gp_likelihood.py``). Matrices this small never start BLAS
threads.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.kernels.categorical import CategoricalKernel
from gpytorch.constraints import Interval
from gpytorch.kernels import Kernel, ProductKernel, RBFKernel
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.errors import NotPSDError

#: Diagonal jitter tried, in turn, when the covariance is not numerically positive
#: definite (GPyTorch's ``psd_safe_cholesky`` schedule for float64).
JITTERS = (0.0, 1e-8, 1e-7, 1e-6)

_LOG_2PI = math.log(2.0 * math.pi)
_NOISE = "likelihood.noise_covar.raw_noise"
_MEAN = "mean_module.raw_constant"


class MarginalLikelihoodLoss:
    """``loss(theta) -> (value, gradient)`` for SciPy: the negative marginal log likelihood
    minus the log priors, divided by ``n`` (GPyTorch's convention), as a function of the
    model's trainable raw parameters flattened into ``theta`` (``parameters`` order)."""

    def __init__(self, model: SingleTaskGP) -> None:
        self.parameters = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        names = {name for name, _ in self.parameters}
        x = model.train_inputs[0].detach().numpy()
        self._y = model.train_targets.detach().numpy()
        noise = model.likelihood.noise_covar
        self._noise = _Transform(noise.raw_noise_constraint, getattr(noise, "noise_prior", None))
        self._parts = _kernel_parts(model.covar_module, x)
        expected = {_NOISE, _MEAN} | {part.name for part in self._parts}
        if names != expected:
            raise TypeError(f"model parameters {sorted(names)} are not {sorted(expected)}")
        self._slices: dict[str, slice] = {}
        start = 0
        for name, parameter in self.parameters:
            self._slices[name] = slice(start, start + parameter.numel())
            start += parameter.numel()

    def state(self) -> np.ndarray:
        """The model's current raw parameters as ``theta``."""
        return np.concatenate([p.detach().reshape(-1).numpy() for _, p in self.parameters])

    def load(self, theta: np.ndarray) -> None:
        """Write ``theta`` into the model's raw parameters."""
        with torch.no_grad():
            for name, parameter in self.parameters:
                values = torch.as_tensor(theta[self._slices[name]], dtype=parameter.dtype)
                parameter.copy_(values.view_as(parameter))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        y, n = self._y, len(self._y)
        gradient = np.zeros_like(theta)
        covariance = np.ones((n, n))
        factors = []
        for part in self._parts:
            lengthscale = part.transform.value(theta[self._slices[part.name]])
            factor, per_dim = part.correlation(lengthscale)
            covariance *= factor
            factors.append((part, lengthscale, per_dim))
        noise_raw = theta[self._slices[_NOISE]]
        noise = float(self._noise.value(noise_raw)[0])
        residual = y - float(theta[self._slices[_MEAN]][0])
        chol = _cholesky(covariance + noise * np.eye(n))
        inverse = _cho_inverse(chol)
        alpha = inverse @ residual
        negative_log_likelihood = (
            0.5 * float(residual @ alpha) + float(np.log(np.diag(chol)).sum()) + 0.5 * n * _LOG_2PI
        )
        weights = inverse - np.outer(alpha, alpha)  # d nll / d K = weights / 2
        weighted = weights * covariance
        loss = negative_log_likelihood
        for part, lengthscale, per_dim in factors:
            # d K / d l_k = K * per_dim[k] (per_dim holds d log factor / d l_k).
            d_value = 0.5 * np.einsum("ij,kij->k", weighted, per_dim)
            loss += part.transform.penalty(lengthscale)
            d_value = d_value + part.transform.d_penalty(lengthscale)
            gradient[self._slices[part.name]] = d_value * part.transform.d_value(
                theta[self._slices[part.name]]
            )
        noise_value = np.array([noise])
        loss += self._noise.penalty(noise_value)
        d_noise = 0.5 * np.trace(weights) + self._noise.d_penalty(noise_value)
        gradient[self._slices[_NOISE]] = d_noise * self._noise.d_value(noise_raw)
        gradient[self._slices[_MEAN]] = -alpha.sum()
        return loss / n, gradient / n


class _Transform:
    """A raw parameter's constraint (value = raw, or softplus(raw) + lower bound) and
    LogNormal prior, as NumPy functions with derivatives."""

    def __init__(self, constraint: Interval, prior: object | None) -> None:
        transform = constraint._transform
        softplus = transform is torch.nn.functional.softplus or (
            isinstance(transform, torch.nn.Softplus) and transform.beta == 1.0
        )
        if transform is not None and not softplus:
            raise TypeError(f"constraint transform {transform!r} is not supported")
        if constraint.upper_bound.isfinite().any():
            raise TypeError("upper-bounded constraints are not supported")
        self._softplus = transform is not None
        self._lower = float(constraint.lower_bound)
        if prior is not None and not isinstance(prior, LogNormalPrior):
            raise TypeError(f"prior {type(prior).__name__} is not supported")
        self._prior = None
        if prior is not None:
            self._prior = (float(prior.base_dist.loc), float(prior.base_dist.scale))

    def value(self, raw: np.ndarray) -> np.ndarray:
        return np.logaddexp(0.0, raw) + self._lower if self._softplus else raw

    def d_value(self, raw: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * raw)) if self._softplus else np.ones_like(raw)

    def penalty(self, value: np.ndarray) -> float:
        """Minus the log prior density of ``value`` (0 without a prior)."""
        if self._prior is None:
            return 0.0
        loc, scale = self._prior
        log_value = np.log(value)
        log_density = (
            -log_value - math.log(scale) - 0.5 * _LOG_2PI - (log_value - loc) ** 2 / (2 * scale**2)
        )
        return float(-log_density.sum())

    def d_penalty(self, value: np.ndarray) -> np.ndarray:
        if self._prior is None:
            return np.zeros_like(value)
        loc, scale = self._prior
        return 1.0 / value + (np.log(value) - loc) / (scale**2 * value)


class _Part:
    """One factor of the product kernel: its parameter name, transform and correlation."""

    def __init__(self, name: str, kernel: Kernel, x: np.ndarray) -> None:
        self.name = name
        self.transform = _Transform(
            kernel.raw_lengthscale_constraint, getattr(kernel, "lengthscale_prior", None)
        )
        active = kernel.active_dims
        points = x if active is None else x[:, active.tolist()]
        difference = points[:, None, :] - points[None, :, :]
        if isinstance(kernel, RBFKernel):
            self._kind = "rbf"
            self._data = np.moveaxis(difference**2, -1, 0)  # k x n x n squared distances
        elif isinstance(kernel, CategoricalKernel):
            self._kind = "categorical"
            self._data = np.moveaxis((difference != 0).astype(float), -1, 0) / points.shape[1]
        else:
            raise TypeError(f"kernel {type(kernel).__name__} has no NumPy loss")

    def correlation(self, lengthscale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The factor (``n x n``) and ``d log factor / d l_k`` (``k x n x n``)."""
        scale = lengthscale.reshape(-1, 1, 1)
        if self._kind == "rbf":
            factor = np.exp(-0.5 * (self._data / scale**2).sum(0))
            return factor, self._data / scale**3
        factor = np.exp(-(self._data / scale).sum(0))
        return factor, self._data / scale**2


def _kernel_parts(kernel: Kernel, x: np.ndarray) -> list[_Part]:
    if isinstance(kernel, ProductKernel):
        return [
            _Part(f"covar_module.kernels.{i}.raw_lengthscale", factor, x)
            for i, factor in enumerate(kernel.kernels)
        ]
    return [_Part("covar_module.raw_lengthscale", kernel, x)]


def _cholesky(matrix: np.ndarray) -> np.ndarray:
    eye = np.eye(len(matrix))
    for jitter in JITTERS:
        try:
            return np.linalg.cholesky(matrix + jitter * eye if jitter else matrix)
        except np.linalg.LinAlgError:
            continue
    raise NotPSDError("GP covariance is not positive definite, even with jitter 1e-6")


def _cho_inverse(chol: np.ndarray) -> np.ndarray:
    """``(L L^T)^-1`` from the lower Cholesky factor ``L``."""
    inverse_chol = np.linalg.solve(chol, np.eye(len(chol)))  # small: no BLAS threads
    return inverse_chol.T @ inverse_chol
