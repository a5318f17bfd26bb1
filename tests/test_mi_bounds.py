"""InfoNCE and NWJ (trainables.estimators) against closed forms and correlated Gaussians.

For X, Y in R^d with Y = rho X + sqrt(1 - rho^2) N, X and N standard normal, the MI is
I = -d/2 log(1 - rho^2) nats, and the optimal critics are known in closed form:
log p(y|x) / p(y) (tight for InfoNCE as B grows, up to a function of x) and 1 + log p(y|x) / p(y)
(tight for NWJ in expectation).
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from trainables.estimators import infonce, nwj
from trainables.flows import SeparableCritic


def correlated_gaussians(batch: int, dim: int, rho: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    return x, y


def true_mi(dim: int, rho: float) -> float:
    return -0.5 * dim * math.log(1 - rho**2)


def log_density_ratio(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    """scores[i, j] = log p(y_j | x_i) - log p(y_j) for the Gaussian pair."""
    var = 1 - rho**2
    diff = y[None, :, :] - rho * x[:, None, :]
    return (-0.5 * diff.square() / var + 0.5 * y[None, :, :].square()).sum(-1) - 0.5 * x.shape[1] * math.log(var)


@pytest.mark.parametrize("batch, margin", [(2, 0.0), (16, 3.0), (128, -1.0)])
def test_infonce_closed_form_for_a_diagonal_margin(batch, margin):
    scores = margin * torch.eye(batch, dtype=torch.float64)
    expected = math.log(batch) - math.log(1 + (batch - 1) * math.exp(-margin))
    assert infonce(scores).item() == pytest.approx(expected, rel=1e-12)


def test_infonce_never_exceeds_log_batch():
    generator = torch.Generator().manual_seed(0)
    for batch in (2, 7, 64):
        for scale in (0.1, 10.0, 1e4):
            scores = scale * torch.randn(batch, batch, generator=generator)
            assert infonce(scores).item() <= math.log(batch) + 1e-6
        # a critic that separates the pairs perfectly reaches log B and not beyond
        perfect = infonce(1e4 * torch.eye(batch))
        assert perfect.item() == pytest.approx(math.log(batch), abs=1e-5) and perfect.item() <= math.log(batch) + 1e-6


def test_nwj_closed_form_uses_the_off_diagonal_pairs():
    batch, a, b = 6, 2.5, -0.5
    scores = torch.full((batch, batch), b, dtype=torch.float64).fill_diagonal_(a)
    assert nwj(scores).item() == pytest.approx(a - math.exp(b - 1), rel=1e-12)
    # the diagonal never enters the exponential term
    scores[0, 0] = 50.0
    assert nwj(scores).item() == pytest.approx((50.0 + (batch - 1) * a) / batch - math.exp(b - 1), rel=1e-12)


def test_estimators_are_differentiable_and_keep_float64():
    scores = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    for estimator in (infonce, nwj):
        value = estimator(scores)
        assert value.dtype == torch.float64 and value.dim() == 0
        (grad,) = torch.autograd.grad(value, scores)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("estimator", [infonce, nwj])
@pytest.mark.parametrize("shape", [(3, 4), (1, 1), (4,), (2, 2, 2)])
def test_estimators_refuse_non_square_scores(estimator, shape):
    message = f"{estimator.__name__} needs a (B, B) critic score matrix with B >= 2, got shape {shape}"
    with pytest.raises(ValueError, match=re.escape(message)):
        estimator(torch.zeros(shape))


@pytest.mark.parametrize("dim, rho", [(1, 0.5), (2, 0.8)])
def test_optimal_critics_recover_the_gaussian_mi(dim, rho):
    generator = torch.Generator().manual_seed(dim)
    truth = true_mi(dim, rho)
    nce, nwj_values = [], []
    for _ in range(40):
        x, y = correlated_gaussians(256, dim, rho, generator)
        ratio = log_density_ratio(x, y, rho)
        nce.append(infonce(ratio).item())
        nwj_values.append(nwj(1.0 + ratio).item())
    # InfoNCE with the optimal critic: I - E[log(1/B sum_j p(y_j|x_i)/p(y_j))] < I, close for I << log 256
    assert truth - 0.05 < sum(nce) / len(nce) < truth + 0.005
    assert sum(nwj_values) / len(nwj_values) == pytest.approx(truth, abs=0.05)


@pytest.mark.parametrize("estimator", [infonce, nwj])
def test_trained_separable_critic_approaches_the_true_mi(estimator):
    """I = -d/2 log(1 - rho^2) = 1.02 nats (d = 2, rho = 0.8), well below log 128 = 4.85."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        estimate, truth = _train_separable_critic(estimator)
    finally:
        torch.set_num_threads(threads)
    assert abs(estimate - truth) < 0.1, (estimate, truth)
    assert estimate < truth + 0.05  # a lower bound, up to the noise of 100 batches


def _train_separable_critic(estimator) -> tuple[float, float]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    dim, rho, batch = 2, 0.8, 128
    truth = true_mi(dim, rho)
    critic = SeparableCritic(dim, dim, hidden=64, embed=32).double()
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(1000):
        x, y = correlated_gaussians(batch, dim, rho, generator)
        loss = -estimator(critic(x, y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        estimates = [estimator(critic(*correlated_gaussians(batch, dim, rho, generator))).item() for _ in range(100)]
    return sum(estimates) / len(estimates), truth
