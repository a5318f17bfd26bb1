"""Poole et al.'s bounds on I(X; Z) for a Gaussian encoder (trainables/gaussian_mi.py), against
scipy's Gaussian density and a Gaussian channel whose I(X; Z) is known in closed form."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from trainables.gaussian_mi import gaussian_encoder_mi_bounds, gaussian_log_density_matrix

SEEDS = 10


def test_the_density_matrix_is_scipys_log_density_of_every_pair():
    generator = torch.Generator().manual_seed(0)
    z, mean = (torch.randn(7, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    std = torch.rand(7, 4, generator=generator, dtype=torch.float64) + 0.2
    expected = np.array([[multivariate_normal(mean[j].numpy(), np.diag(std[j].numpy() ** 2)).logpdf(z[i].numpy())
                          for j in range(7)] for i in range(7)])
    np.testing.assert_allclose(gaussian_log_density_matrix(z, mean, std).numpy(), expected, rtol=0, atol=1e-10)


def channel_bounds(dim: int, gain: float, n: int) -> tuple[float, np.ndarray, np.ndarray]:
    """X ~ N(0, I_d), encoder N(A x, I): I(X; Z) = 1/2 log det(I + A A^T) bits, and the two bounds
    (bits) on one batch of ``n`` for each of :data:`SEEDS` seeds."""
    a = torch.randn(dim, dim, generator=torch.Generator().manual_seed(99), dtype=torch.float64) * gain / math.sqrt(dim)
    exact = 0.5 * torch.logdet(torch.eye(dim, dtype=torch.float64) + a @ a.T).item() / math.log(2)
    lower, upper = [], []
    for seed in range(SEEDS):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
        mean, std = x @ a.T, torch.ones(n, dim, dtype=torch.float64)
        z = mean + std * torch.randn(n, dim, generator=generator, dtype=torch.float64)
        bounds = gaussian_encoder_mi_bounds(z, mean, std)
        lower.append(bounds[0].item() / math.log(2))
        upper.append(bounds[1].item() / math.log(2))
    return exact, np.array(lower), np.array(upper)


@pytest.mark.parametrize("dim, gain", [(2, 1.0), (32, 0.3), (256, 0.05)])
def test_where_i_xz_is_well_below_log_n_both_bounds_read_it(dim, gain):
    exact, lower, upper = channel_bounds(dim, gain, 450)
    # the spread of one batch is about 0.07 bits at N = 450 (0.03 at the smallest I)
    assert abs(lower.mean() - exact) < 0.1 and abs(upper.mean() - exact) < 0.1
    assert (lower <= upper).all()


@pytest.mark.parametrize("dim, gain", [(8, 3.0), (256, 1.0)])
def test_above_log_n_the_bounds_bracket_i_xz_and_the_lower_one_stops_at_log_n(dim, gain):
    exact, lower, upper = channel_bounds(dim, gain, 450)
    assert exact > math.log2(450)  # 9.7 and 107 bits
    assert (lower <= math.log2(450) + 1e-9).all() and lower.mean() < exact < upper.mean()
    assert upper.min() > exact


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"one shape \(N, d\) with N >= 2, got \(3, 2\), \(3, 2\) and \(3, 1\)"):
        gaussian_encoder_mi_bounds(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 1))
