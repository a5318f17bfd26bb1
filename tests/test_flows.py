"""Encoders and critics of trainables.flows: invertibility, log-determinant, identity init, scores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.flows import BilinearCritic, ConcatCritic, RealNVP, SeparableCritic, SkipMLP


def scrambled(module: nn.Module, std: float = 0.3, seed: int = 0) -> nn.Module:
    """Redraw every weight with a large std, so the map is far from the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(std * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module


@pytest.mark.parametrize("dim", [2, 7, 32])
def test_realnvp_inverse_undoes_forward(dim):
    flow = scrambled(RealNVP(dim, depth=6, hidden=32)).double()
    x = torch.randn(64, dim, dtype=torch.float64)
    y = flow(x)
    assert (y - x).abs().max() > 0.1  # far from the identity, so the test means something
    torch.testing.assert_close(flow.inverse(y), x, rtol=0, atol=1e-10)
    torch.testing.assert_close(flow(flow.inverse(x)), x, rtol=0, atol=1e-10)


def test_realnvp_log_determinant_matches_the_autograd_jacobian():
    dim = 10
    flow = scrambled(RealNVP(dim, depth=5, hidden=16), seed=3).double()
    x = torch.randn(8, dim, dtype=torch.float64)
    jacobians = torch.func.vmap(torch.func.jacrev(lambda xi: flow(xi[None])[0]))(x)
    sign, logabsdet = torch.linalg.slogdet(jacobians)
    assert (sign > 0).all()
    assert jacobians.sub(torch.eye(dim, dtype=torch.float64)).abs().max() > 0.1  # not the identity
    torch.testing.assert_close(flow.log_abs_det_jacobian(x), logabsdet, rtol=0, atol=1e-10)


@pytest.mark.parametrize("encoder", [RealNVP, SkipMLP])
def test_encoders_start_near_the_identity_and_keep_the_shape(encoder):
    torch.manual_seed(0)
    model = encoder(32, depth=30, hidden=64, init_scale=1e-4)
    x = torch.rand(16, 32)
    y = model(x)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-2
    assert (y - x).abs().max() > 0  # the last layers are small, not zero: gradients reach every layer


def test_skip_mlp_can_become_non_invertible():
    """Residual blocks h + f(h) with an unconstrained f: one with f(h) = -h maps everything to 0."""
    model = SkipMLP(4, depth=1, hidden=8)
    with torch.no_grad():
        first, _, second, _, last = model.blocks[0]
        for layer in (first, second, last):
            layer.bias.zero_()
        first.weight.copy_(torch.cat([torch.eye(4), -torch.eye(4)]))  # [h; -h]
        second.weight.copy_(torch.eye(8))
        last.weight.copy_(torch.cat([-torch.eye(4), torch.eye(4)], dim=1))  # -relu(h) + relu(-h) = -h
    x = torch.randn(5, 4)
    torch.testing.assert_close(model(x), torch.zeros_like(x))


@pytest.mark.parametrize("name", ["dim", "depth", "hidden"])
def test_encoders_refuse_bad_sizes(name):
    sizes = {"dim": 8, "depth": 2, "hidden": 4, name: 0}
    with pytest.raises(ValueError, match=f"{name} must be an int >= 1, got 0"):
        RealNVP(**sizes)
    with pytest.raises(ValueError, match="RealNVP needs dim >= 2"):
        RealNVP(1)


def test_bilinear_critic_is_x_w_y():
    critic = BilinearCritic(3, 5)
    u, v = torch.randn(4, 3), torch.randn(4, 5)
    weight = critic.linear.weight  # (D1, D2)
    expected = torch.stack([torch.stack([u[i] @ weight @ v[j] for j in range(4)]) for i in range(4)])
    torch.testing.assert_close(critic(u, v), expected)


def test_separable_critic_is_a_dot_product_of_embeddings():
    critic = SeparableCritic(3, 5, hidden=7, embed=2)
    u, v = torch.randn(4, 3), torch.randn(6, 5)
    scores = critic(u, v)
    assert scores.shape == (4, 6)
    torch.testing.assert_close(scores[1, 4], critic.phi1(u[1]) @ critic.phi2(v[4]))


def test_concat_critic_scores_every_pair_like_the_plain_mlp():
    critic = ConcatCritic(3, 5, hidden=11)
    u, v = torch.randn(4, 3), torch.randn(4, 5)
    scores = critic(u, v)
    assert scores.shape == (4, 4)
    for i in range(4):
        torch.testing.assert_close(scores[i], critic.pair(u[i].expand(4, 3), v))
