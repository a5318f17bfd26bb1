"""Estimators against closed forms computed independently (torch.distributions)."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from trainables.estimators import NATS_PER_BIT, gaussian_kl_standard_normal, nats_to_bits


@pytest.mark.parametrize("latent_dim", [1, 2, 16, 256])
def test_gaussian_kl_matches_torch_distributions(latent_dim):
    generator = torch.Generator().manual_seed(latent_dim)
    mean = 2.0 * torch.randn(32, latent_dim, generator=generator, dtype=torch.float64)
    std = torch.exp(torch.randn(32, latent_dim, generator=generator, dtype=torch.float64))
    reference = kl_divergence(
        Independent(Normal(mean, std), 1),
        Independent(Normal(torch.zeros_like(mean), torch.ones_like(std)), 1),
    )
    kl = gaussian_kl_standard_normal(mean, std)
    assert kl.shape == (32,)
    torch.testing.assert_close(kl, reference)


def test_gaussian_kl_keeps_leading_dims():
    mean, std = torch.zeros(3, 4, 5), torch.full((3, 4, 5), 2.0)
    expected = 0.5 * 5 * (4.0 - 1.0 - 2.0 * math.log(2.0))
    torch.testing.assert_close(gaussian_kl_standard_normal(mean, std), torch.full((3, 4), expected))


def test_gaussian_kl_is_zero_at_the_prior():
    kl = gaussian_kl_standard_normal(torch.zeros(8, 10), torch.ones(8, 10))
    torch.testing.assert_close(kl, torch.zeros(8))


def test_gaussian_kl_is_finite_when_std_underflows():
    kl = gaussian_kl_standard_normal(torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 1.0]]))
    assert torch.isfinite(kl).all() and kl.item() > 10


def test_gaussian_kl_upcasts_half_precision():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 256, generator=generator).bfloat16()
    std = torch.rand(4, 256, generator=generator).add(0.5).bfloat16()
    kl = gaussian_kl_standard_normal(mean, std)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl, gaussian_kl_standard_normal(mean.double(), std.double()).float())


def test_gaussian_kl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        gaussian_kl_standard_normal(torch.zeros(2, 3), torch.ones(2, 4))


def test_nats_to_bits():
    assert NATS_PER_BIT == pytest.approx(0.6931471805599453)
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert nats_to_bits(math.log(1024)) == pytest.approx(10.0)
    torch.testing.assert_close(nats_to_bits(torch.tensor([math.log(8.0)])), torch.tensor([3.0]))
