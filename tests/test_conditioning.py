"""log_condition_number (trainables.evaluation.conditioning) against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainables.evaluation.conditioning import MAX_LOG_CONDITION_NUMBER, log_condition_number, log_condition_percentiles


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("dim", [2, 16, 50])
def test_linear_map_gives_log_cond_of_the_matrix_at_every_input(dim, dtype, tolerance):
    generator = torch.Generator().manual_seed(dim)
    a = torch.randn(dim, dim, generator=generator, dtype=dtype)
    x = torch.randn(12, dim, generator=generator, dtype=dtype)
    values = log_condition_number(lambda batch: batch @ a.T, x, chunk_size=5)
    expected = math.log(torch.linalg.cond(a.double()).item())
    assert values.shape == (12,) and values.dtype == torch.float64
    assert values.sub(expected).abs().max().item() < tolerance * max(1.0, expected)


def test_ill_conditioned_matrix_in_float64():
    """Singular values 1 ... 1e-6: log cond = 6 log 10 = 13.8, resolved by the float64 Gram matrix.

    The Gram matrix squares the condition number to 1e12, so its smallest eigenvalue (1e-12) carries
    a relative error up to about eps_64 / 1e-12 = 2.2e-4, i.e. up to 1.1e-4 on log sigma_min: 8e-6
    of 13.8. rtol 1e-5 allows that; 1e-6 failed on one machine at 1.1e-6 (the LAPACK rounding differs
    between processors).
    """
    generator = torch.Generator().manual_seed(0)
    q1, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator, dtype=torch.float64))
    a = q1 @ torch.diag(torch.logspace(0, -6, 8, dtype=torch.float64)) @ q2.T
    values = log_condition_number(lambda batch: batch @ a.T, torch.randn(3, 8, dtype=torch.float64))
    torch.testing.assert_close(values, torch.full((3,), 6 * math.log(10), dtype=torch.float64), rtol=1e-5, atol=0)


def test_non_square_jacobian_uses_the_nonzero_singular_values():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(3, 7, generator=generator, dtype=torch.float64)  # (out, in): rank 3
    x = torch.randn(4, 7, dtype=torch.float64)
    singular = torch.linalg.svdvals(a)
    expected = math.log(singular[0] / singular[-1])
    torch.testing.assert_close(log_condition_number(lambda b: b @ a.T, x), torch.full((4,), expected, dtype=torch.float64))
    tall = a.T  # (7, 3): the same singular values
    torch.testing.assert_close(log_condition_number(lambda b: b @ tall.T, x[:, :3]), torch.full((4,), expected, dtype=torch.float64))


def test_nonlinear_map_is_per_example():
    """tanh elementwise: J = diag(1 - tanh(x)^2), so cond = max / min of that derivative, per row."""
    x = torch.tensor([[0.0, 1.0, 2.0], [0.5, 0.5, 0.5], [-3.0, 0.0, 0.1]], dtype=torch.float64)
    derivative = 1 - torch.tanh(x).square()
    expected = (derivative.max(dim=1).values / derivative.min(dim=1).values).log()
    torch.testing.assert_close(log_condition_number(torch.tanh, x), expected)


def test_module_with_image_shaped_input():
    conv = torch.nn.Conv2d(1, 1, 3, padding=1).double()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    values = log_condition_number(conv, x)
    matrix = torch.func.jacrev(lambda xi: conv(xi[None])[0])(x[0]).reshape(16, 16)
    torch.testing.assert_close(values, torch.full((2,), math.log(torch.linalg.cond(matrix).item()), dtype=torch.float64))


def test_singular_jacobian_is_capped_not_infinite():
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    values = log_condition_number(lambda b: b @ a.T, torch.randn(2, 2, dtype=torch.float64))
    torch.testing.assert_close(values, torch.full((2,), MAX_LOG_CONDITION_NUMBER, dtype=torch.float64))
    assert 17.9 < MAX_LOG_CONDITION_NUMBER < 18.1


def test_works_under_no_grad_and_inference_mode():
    a = torch.diag(torch.tensor([4.0, 1.0]))
    x = torch.randn(3, 2)
    with torch.no_grad():
        assert torch.allclose(log_condition_number(lambda b: b @ a.T, x), torch.full((3,), math.log(4.0), dtype=torch.float64))
    with torch.inference_mode():
        assert torch.allclose(log_condition_number(lambda b: b @ a.T, x), torch.full((3,), math.log(4.0), dtype=torch.float64))


@pytest.mark.parametrize("x, chunk_size, message", [
    (torch.zeros(3), 4, "non-empty floating"),
    (torch.zeros(0, 3), 4, "non-empty floating"),
    (torch.zeros(2, 3, dtype=torch.long), 4, "non-empty floating"),
    (torch.zeros(2, 3), 0, "chunk_size must be an int >= 1, got 0"),
])
def test_bad_inputs_raise(x, chunk_size, message):
    with pytest.raises(ValueError, match=message):
        log_condition_number(lambda b: b, x, chunk_size=chunk_size)


def test_percentiles_match_numpy():
    values = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], dtype=torch.float64)
    got = log_condition_percentiles(values)
    assert list(got) == [5, 25, 50, 75, 95]
    np.testing.assert_allclose(list(got.values()), np.percentile(values.numpy(), [5, 25, 50, 75, 95]))
