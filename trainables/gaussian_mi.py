"""Bounds on I(X; Z) for an encoder whose p(z | x) is a known diagonal Gaussian (VIB, CEB).

The k-NN ruler reads I(X; Z) = h(Z) - h(Z | X) for every objective alike, with a large upward
bias in high dimensions, and its bias correction (:mod:`trainables.knn_bias`) is exact only for a
Gaussian Z; a stochastic encoder's Z is a mixture of its posteriors, which that correction
misreads by tens to hundreds of bits (docs/information_plane.md). Where the encoder's density
p(z | x) = N(z; mean(x), diag std(x)^2) is known, two multi-sample bounds of Poole, Ozair, van den
Oord, Alemi and Tucker ("On variational bounds of mutual information", ICML 2019, the
known-conditional case of their section 2) bracket the population I(X; Z) with no density
estimate at all. For a batch of N examples x_j drawn from the data and one z_i ~ p(z | x_i) each,
with ``S[i, j] = log p(z_i | x_j)``:

- **lower** (InfoNCE with the true log-density as its critic, the critic that makes it tightest):
  ``E[ 1/N sum_i ( S[i, i] - log( 1/N sum_j exp S[i, j] ) ) ] <= I(X; Z)``; each term is at most
  log N, so the bound can never exceed log N: a value near log2 N bits says that N examples cannot
  certify more, not that I(X; Z) is that large (McAllester and Stratos, AISTATS 2020).
- **upper** (Poole et al.'s minibatch leave-one-out upper bound):
  ``I(X; Z) <= E[ 1/N sum_i ( S[i, i] - log( 1/(N-1) sum_{j != i} exp S[i, j] ) ) ]``: the
  marginal p(z_i) replaced by the mixture of the other N - 1 posteriors. It is tight when the
  posteriors overlap and loose (growing without bound) when they are far apart compared with
  their widths, i.e. where I(X; Z) exceeds log N.

Both hold in expectation over batches; one batch gives each with a sampling spread of a fraction
of a bit at N of a few hundred (tests/test_gaussian_mi.py measures it on a Gaussian channel whose
I(X; Z) is known in closed form). The target is the same population I(X; Z) the k-NN ruler reads,
so a bias-corrected k-NN value outside [lower, upper] is a misreading of the correction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainables.estimators import gaussian_entropy, infonce


def gaussian_draw(mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """One draw ``z = mean + std * eps`` of N(mean, diag std^2) per row (torch's global RNG) and that
    Gaussian's entropy in nats, ``(B, d)`` and ``(B,)``: the information plane's Z and h(Z | X = x)."""
    return mean + std * torch.randn_like(std), gaussian_entropy(std)


def gaussian_log_density_matrix(z: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``S[i, j] = log N(z_i; mean_j, diag std_j^2)`` in nats, ``(N, N)`` float64.

    ``z``, ``mean`` and ``std`` are ``(N, d)``. The squared Mahalanobis distances are expanded into
    three matrix products (memory N^2, not N^2 d); the diagonal, the positive pairs whose distance
    is of order d, is recomputed directly so that no cancellation touches it. ``std`` is clamped
    at float32's smallest normal number, as :func:`~trainables.estimators.gaussian_entropy` does.

    Raises:
        ValueError: the three are not ``(N, d)`` tensors of one shape with N >= 2.
    """
    if z.dim() != 2 or mean.shape != z.shape or std.shape != z.shape or len(z) < 2:
        raise ValueError(f"gaussian_log_density_matrix needs z, mean and std of one shape (N, d) with N >= 2, got "
                         f"{tuple(z.shape)}, {tuple(mean.shape)} and {tuple(std.shape)}")
    z, mean = z.double(), mean.double()
    std = std.double().clamp_min(torch.finfo(torch.float32).tiny)
    precision = std.pow(-2)
    squared = (z.square() @ precision.T - 2 * z @ (mean * precision).T
               + (mean.square() * precision).sum(dim=1)[None, :])
    squared.diagonal().copy_(((z - mean) / std).square().sum(dim=1))
    normaliser = std.log().sum(dim=1) + 0.5 * z.shape[1] * math.log(2 * math.pi)
    return -0.5 * squared - normaliser[None, :]


def gaussian_encoder_mi_bounds(z: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """Poole et al.'s (lower, upper) bounds on I(X; Z) in nats for a diagonal Gaussian encoder.

    Args:
        z: ``(N, d)``, one sample ``z_i ~ N(mean_i, diag std_i^2)`` per example.
        mean, std: ``(N, d)``, the encoder's posterior of each example.

    Returns:
        Two 0-d float64 tensors in nats: the InfoNCE lower bound (<= log N) and the leave-one-out
        upper bound (module docstring).

    Raises:
        ValueError: as :func:`gaussian_log_density_matrix`.
    """
    scores = gaussian_log_density_matrix(z, mean, std)
    lower = infonce(scores)
    positives = scores.diagonal().clone()
    others = torch.logsumexp(scores.fill_diagonal_(float("-inf")), dim=1)
    upper = (positives - others).mean() + math.log(len(z) - 1)
    return lower, upper
