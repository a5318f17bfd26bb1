"""NT-Xent (SimCLR) and MoCo's InfoNCE against direct computations from their definitions."""

import math

import pytest
import torch

from trainables.estimators import moco_info_nce, nt_xent


def nt_xent_by_definition(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's eq. 1 term by term in plain Python: every one of the 2N views is an anchor once."""
    views = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        scores = {b: math.exp(float(views[a] @ views[b]) / temperature) for b in range(2 * n) if b != a}
        total += -math.log(scores[positive] / sum(scores.values()))
    return total / (2 * n)


@pytest.mark.parametrize("n, d, temperature", [(2, 3, 0.5), (4, 3, 0.07), (5, 8, 1.0), (3, 128, 0.2)])
def test_nt_xent_equals_its_definition(n, d, temperature):
    generator = torch.Generator().manual_seed(n * d)
    z1 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(nt_xent_by_definition(z1, z2, temperature), rel=1e-10)


def test_nt_xent_is_symmetric_in_the_two_views():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 16, generator=generator), torch.randn(6, 16, generator=generator)
    torch.testing.assert_close(nt_xent(z1, z2, 0.1), nt_xent(z2, z1, 0.1))
    # but it is not symmetric in the order of the examples of one view only: pairs matter
    assert not torch.allclose(nt_xent(z1, z2, 0.1), nt_xent(z1, z2.roll(1, dims=0), 0.1))


@pytest.mark.parametrize("n, temperature", [(2, 0.5), (4, 0.07), (8, 1.0)])
def test_nt_xent_closed_form_for_orthonormal_identical_views(n, temperature):
    z = torch.eye(n, 2 * n, dtype=torch.float64)
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / temperature))
    assert float(nt_xent(z, z, temperature)) == pytest.approx(expected, rel=1e-12)


def test_nt_xent_ignores_the_scale_of_each_projection():
    generator = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(4, 5, generator=generator), torch.randn(4, 5, generator=generator)
    scale = torch.rand(4, 1, generator=generator) + 0.1
    torch.testing.assert_close(nt_xent(z1 * scale, z2, 0.3), nt_xent(z1, z2, 0.3))


@pytest.mark.parametrize("z1, z2, temperature, message", [
    (torch.zeros(4, 3), torch.zeros(5, 3), 0.1, r"\(4, 3\) and \(5, 3\)"),
    (torch.zeros(1, 3), torch.zeros(1, 3), 0.1, "N >= 2"),
    (torch.zeros(4), torch.zeros(4), 0.1, r"\(4,\)"),
    (torch.zeros(4, 3), torch.zeros(4, 3), 0.0, "temperature must be > 0, got 0.0"),
])
def test_nt_xent_errors_name_the_bad_value(z1, z2, temperature, message):
    with pytest.raises(ValueError, match=message):
        nt_xent(z1, z2, temperature)


def moco_by_definition(query, key, queue, temperature) -> float:
    total = 0.0
    for q, k in zip(query.double(), key.double()):
        q, k = q / q.norm(), k / k.norm()
        positive = math.exp(float(q @ k) / temperature)
        negatives = sum(math.exp(float(q @ n) / temperature) for n in queue.double())
        total += -math.log(positive / (positive + negatives))
    return total / len(query)


def test_moco_info_nce_equals_its_definition():
    generator = torch.Generator().manual_seed(3)
    query, key = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    queue = torch.nn.functional.normalize(torch.randn(11, 8, generator=generator), dim=1)
    assert float(moco_info_nce(query, key, queue, 0.07)) == pytest.approx(moco_by_definition(query, key, queue, 0.07), rel=1e-5)


def test_moco_info_nce_sends_no_gradient_to_keys_or_queue():
    query = torch.randn(4, 6, requires_grad=True)
    key = torch.randn(4, 6, requires_grad=True)
    queue = torch.randn(9, 6, requires_grad=True)
    moco_info_nce(query, key, queue, 0.2).backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert key.grad is None and queue.grad is None


def test_moco_info_nce_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"\(4, 6\), \(4, 6\) and \(9, 5\)"):
        moco_info_nce(torch.zeros(4, 6), torch.zeros(4, 6), torch.zeros(9, 5), 0.2)
    with pytest.raises(ValueError, match="temperature must be > 0, got -1"):
        moco_info_nce(torch.zeros(4, 6), torch.zeros(4, 6), torch.zeros(9, 6), -1)
