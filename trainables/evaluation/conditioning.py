"""How hard an encoder is to invert: the condition number of its Jacobian, per example.

Tschannen et al. (ICLR 2020, section 3.3) train near-identity encoders to maximise an MI lower
bound and watch log(sigma_max / sigma_min) of the encoder's input Jacobian grow: the bounds push
the encoder towards maps that are hard to invert even while they stay invertible.

:func:`log_condition_number` computes it for a batch at once: ``torch.func.vmap`` of
``torch.func.jacrev`` (faster than ``jacfwd`` for these shapes: docs/invertibility.md), then the
eigenvalues of the Jacobian's Gram matrix in float64 (``eigvalsh``, cheaper than ``svdvals`` for the
same singular values).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

FLOAT64_EPS = torch.finfo(torch.float64).eps
MAX_LOG_CONDITION_NUMBER = 0.5 * math.log(1.0 / FLOAT64_EPS)
"""About 18.0: the largest log condition number the float64 Gram matrix can resolve."""

PERCENTILES = (5, 25, 50, 75, 95)
"""Default percentiles of :func:`log_condition_percentiles`: the median, the quartiles, the 5th and 95th."""


def log_condition_number(fn: Callable[[Tensor], Tensor], x: Tensor, *, chunk_size: int = 64) -> Tensor:
    """log(sigma_max / sigma_min) of the Jacobian of ``fn`` at each example of ``x``.

    ``fn`` maps a batch ``(B, *in)`` to ``(B, *out)`` row by row (example i of the output depends
    on example i of the input only: no batch norm); the Jacobian of example i is the
    ``(prod(out), prod(in))`` matrix J_i = d fn(x)_i / d x_i, and its condition number is the
    ratio of its largest to its smallest singular value (over the min(prod(in), prod(out))
    singular values of a non-square J). For a linear map x -> A x it is log cond(A) at every x.

    The singular values come from the float64 eigenvalues of the smaller Gram matrix J J^T or
    J^T J (sigma^2 = lambda). Their absolute error is about eps_64 * lambda_max, so lambda_min is
    floored at that and the result capped at :data:`MAX_LOG_CONDITION_NUMBER` (about 18.0): a
    singular Jacobian reads 18.0, not inf. A float32 ``fn`` resolves less: its Jacobian entries
    carry relative errors near 1e-7, so values above about 16 mean "numerically singular".

    Args:
        fn: the map, e.g. an encoder module; evaluated under autograd (grad mode is enabled here).
        x: ``(B, *in)`` inputs, floating point (the dtype ``fn`` expects).
        chunk_size: examples per ``vmap`` call, to bound memory (each holds a Jacobian and the
            activations of prod(out) backward passes).

    Returns:
        ``(B,)`` float64 tensor on ``x``'s device.

    Raises:
        ValueError: ``x`` has no batch dimension or is empty, is not floating point, or
            ``chunk_size`` < 1; ``fn`` does not return one row per example.
    """
    if x.dim() < 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"log_condition_number needs a non-empty floating (B, ...) batch, got shape {tuple(x.shape)} "
                         f"and dtype {x.dtype}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")

    def one_example(xi: Tensor) -> Tensor:
        out = fn(xi.unsqueeze(0))
        if out.shape[0] != 1:
            raise ValueError(f"fn must return one row per example, got shape {tuple(out.shape)} for one example")
        return out.reshape(-1)

    jacobian_of_batch = torch.func.vmap(torch.func.jacrev(one_example))
    values = []
    with torch.inference_mode(False), torch.enable_grad():
        for chunk in x.detach().split(chunk_size):
            jacobian = jacobian_of_batch(chunk.clone()).detach()
            jacobian = jacobian.reshape(len(chunk), jacobian.shape[1], -1).to(torch.float64)
            values.append(_log_condition_from_jacobians(jacobian))
    return torch.cat(values)


def _log_condition_from_jacobians(jacobian: Tensor) -> Tensor:
    """``(B, K, D)`` float64 Jacobians -> ``(B,)`` log condition numbers, via the smaller Gram matrix."""
    if jacobian.shape[1] <= jacobian.shape[2]:
        gram = jacobian @ jacobian.transpose(1, 2)
    else:
        gram = jacobian.transpose(1, 2) @ jacobian
    eigenvalues = torch.linalg.eigvalsh(gram)  # ascending
    largest = eigenvalues[:, -1].clamp_min(torch.finfo(torch.float64).tiny)
    smallest = torch.maximum(eigenvalues[:, 0], FLOAT64_EPS * largest)
    return 0.5 * (largest.log() - smallest.log())


def log_condition_percentiles(values: Tensor, percentiles: tuple[float, ...] = PERCENTILES) -> dict[float, float]:
    """``{percentile: value}`` of ``values`` (linear interpolation, as ``numpy.percentile``)."""
    quantiles = torch.tensor([p / 100 for p in percentiles], dtype=torch.float64, device=values.device)
    return dict(zip(percentiles, torch.quantile(values.to(torch.float64), quantiles).tolist()))
