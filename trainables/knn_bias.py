"""The Kozachenko-Leonenko k-NN entropy estimator's own bias, measured where the answer is known.

:func:`knn_entropy_bias_bits` runs :func:`trainables.estimators.knn_entropy` on a Gaussian with a
batch's covariance, whose entropy is known in closed form, and bootstrap-corrects the result; the
information plane and knn_ib report it beside every k-NN number (docs/information_plane.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainables import estimators
from trainables.estimators import _check_knn_samples, nats_to_bits
from trainables.fast_path import without_autocast


GAUSSIAN_REFERENCE_RIDGE = 1e-6
"""Added to the reference covariance, times its mean variance, so that Cholesky succeeds on a
covariance that is positive semi-definite only up to rounding (a latent dimension that barely moves)."""


BIAS_BOOTSTRAP_DRAWS = 2
"""Independent bootstrap-corrected draws that :func:`knn_entropy_bias_bits` averages (2 k-NN estimates each)."""


def knn_entropy_bias_bits(z: Tensor, k: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
    """The bias of :func:`knn_entropy` at the size, dimension and covariance of ``z``, in bits.

    With b(S) = E[H_kNN(N draws of N(0, S))] - 1/2 log det(2 pi e S), the estimator's bias on a
    Gaussian of covariance S at z's N and d, it returns the one-step bootstrap bias-corrected
    estimate of b at z's own covariance,

        bias = 2 b(Sigma_hat) - b(Sigma_hat*),

    Sigma_hat the unbiased sample covariance of ``z`` (``(N, d)``, rows as examples) and
    Sigma_hat* that of the N draws which estimated b(Sigma_hat), each plus
    ``GAUSSIAN_REFERENCE_RIDGE`` times its mean variance on the diagonal. Each b is one draw:
    :func:`knn_entropy` (the same ``k``, in z's estimator dtype) on N samples of the Gaussian
    minus its closed form. The result is the mean of ``BIAS_BOOTSTRAP_DRAWS`` independent
    corrections, in bits. Subtract it from a k-NN reading of ``z`` for a bias-corrected value.

    Why a Gaussian of the batch's covariance: its entropy is known exactly, and it has the batch's
    N, d, overall scale and correlations, which are what the estimator's bias depends on. At a
    fixed N the Kozachenko-Leonenko bias grows with d, and with the Euclidean norm it is not
    invariant to anisotropic scaling, so an isotropic reference (the information plane's
    ``izx_floor_bits``: zero-entropy noise, whose h = 0) misses the effect of a latent whose
    variance sits in a few directions.

    Why the bootstrap: the plug-in b(Sigma_hat) reads the bias at the sample covariance, not at
    the true one, and where d is a sizeable fraction of N the sample covariance's eigenvalues
    spread (Marchenko-Pastur): the reference is more anisotropic than the truth and its bias
    larger. The parametric bootstrap lets Sigma_hat play the truth and Sigma_hat* its sample
    covariance, estimates the plug-in's error b(Sigma_hat) - b(Sigma) by
    b(Sigma_hat*) - b(Sigma_hat) and subtracts it: the bias-corrected estimate
    2 theta_hat - theta_hat* of Efron and Tibshirani (1993), An Introduction to the Bootstrap,
    ch. 10. Two draws are averaged because 2 b - b* doubles the first draw's Monte-Carlo noise
    and adds the second's.

    What it misses: one bootstrap step removes the first-order term of the plug-in's error, not
    the curvature of b along the eigenvalue spread, so it reads a little low where d/N is large.
    It is the bias on a Gaussian, not on the distribution of ``z``: multimodal or clustered
    latents (one cluster per class) or latents on a curved low-dimensional manifold can be biased
    differently, in either direction (a bounded support adds its own upward edge bias), so a
    corrected I(X; Z) of such a latent can fall below 0. With N <= d the sample covariance is
    singular and the reference would be set by the ridge, not by the data, so the result is NaN;
    it is NaN too when a covariance is not positive definite even with the ridge (a constant
    batch). Its accuracy against the true bias, its Monte-Carlo spread and its cost, as measured:
    docs/information_plane.md, section "Reading k-NN numbers: the estimator's bias"; the spread
    behind the tests' tolerances: tests/test_knn_entropy.py.

    Cost: ``2 * BIAS_BOOTSTRAP_DRAWS`` = 4 k-NN estimates of z's size and 3 Cholesky factors of
    d x d.

    Numerics: the covariances, their Cholesky factors (``cholesky_ex``: no host sync on CUDA) and
    the samples are float64; the samples are cast to ``z``'s estimator dtype (float32 at least)
    for the estimates; the closed form is ``d/2 log(2 pi e) + sum log diag(L)``. The draws come
    from ``generator`` in a fixed order (per correction: the draw for b(Sigma_hat), then the one
    for b(Sigma_hat*)), so a seeded generator repeats the result.

    Args:
        z: ``(N, d)`` samples, as measured (e.g. with the zero-entropy noise already added).
        k: the neighbour of the estimate being corrected.
        generator: draws the reference samples (seed it: the caller's random stream is untouched
            and the result repeats); ``None`` uses the global generator.

    Returns:
        0-d float64 tensor on ``z``'s device, no gradient.

    Raises:
        ValueError: ``z`` is not 2-d, ``k`` is not an int >= 1, or N <= k.
    """
    n, d = _check_knn_samples("knn_entropy_bias_bits", z, k)
    estimator_dtype = torch.promote_types(z.dtype, torch.float32)
    with torch.no_grad(), without_autocast(z.device):
        factor, exact, usable = _gaussian_reference(z.detach().to(torch.float64))
        corrected = []
        for _ in range(BIAS_BOOTSTRAP_DRAWS):
            # b(Sigma_hat): the estimator on N draws from the batch's Gaussian
            sample = torch.randn(n, d, generator=generator, dtype=factor.dtype, device=factor.device) @ factor.T
            plug_in = estimators.knn_entropy(sample.to(estimator_dtype), k).to(torch.float64) - exact
            # b(Sigma_hat*): the same, one level down, from the covariance of those draws
            factor_star, exact_star, usable_star = _gaussian_reference(sample)
            noise = torch.randn(n, d, generator=generator, dtype=factor.dtype, device=factor.device)
            sample_star = noise @ factor_star.T
            bootstrap = estimators.knn_entropy(sample_star.to(estimator_dtype), k).to(torch.float64) - exact_star
            corrected.append(2 * plug_in - bootstrap)
            usable = usable & usable_star
        bias = nats_to_bits(torch.stack(corrected).mean())
        return torch.where(usable & (n > d), bias, torch.full_like(bias, math.nan))


def _gaussian_reference(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cholesky factor L of the unbiased sample covariance of the float64 ``(N, d)`` rows ``x``
    (plus the ridge), its Gaussian's entropy ``d/2 log(2 pi e) + sum log diag(L)`` in nats, and
    whether that factor is usable (0-d bool: Cholesky succeeded on a covariance with some variance)."""
    n, d = x.shape
    centred = x - x.mean(dim=0)
    covariance = centred.T @ centred / (n - 1)
    ridge = GAUSSIAN_REFERENCE_RIDGE * covariance.diagonal().mean()
    covariance = covariance + ridge * torch.eye(d, dtype=x.dtype, device=x.device)
    factor, info = torch.linalg.cholesky_ex(covariance)
    exact = 0.5 * d * math.log(2 * math.pi * math.e) + factor.diagonal().log().sum()
    return factor, exact, (info == 0) & (ridge > 0)


