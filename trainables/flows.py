"""Encoders and critics of the InfoMax experiments (Tschannen et al., ICLR 2020).

Encoders map a flat view ``(B, D)`` to a representation of the same size ``(B, D)``, so their
Jacobian is square and its condition number (:mod:`trainables.evaluation.conditioning`) says how
hard the map is to invert:

- :class:`RealNVP`: additive coupling layers (NICE / RealNVP with shift only). Invertible by
  construction for any weights, with log |det J| = 0 (each coupling is triangular with a unit
  diagonal), so I(g1(X1); g2(X2)) = I(X1; X2) whatever training does. The paper: 30 couplings,
  each shift network with hidden layers [512, 512].
- :class:`SkipMLP`: residual blocks h <- h + f(h). Near the identity at initialisation, but
  nothing keeps it invertible: training may fold or collapse directions.

Both start near the identity: the last layer of every shift / residual network is drawn with
standard deviation ``init_scale`` (the paper's notebook: 1e-4) and a zero bias, the other layers
with PyTorch's default initialisation (all layers at 1e-4 would leave the first layers with
vanishing gradients).

Critics map two batches of representations ``(B, D1)``, ``(B, D2)`` to the ``(B, B)`` score matrix
``scores[i, j] = f(u_i, v_j)`` that :func:`trainables.estimators.infonce` and
:func:`~trainables.estimators.nwj` read (positives on the diagonal):

- :class:`BilinearCritic`: f(u, v) = u^T W v.
- :class:`SeparableCritic`: f(u, v) = phi1(u)^T phi2(v), phi one-hidden-layer ReLU MLPs
  (the notebook: hidden 100, embedding 100).
- :class:`ConcatCritic`: f(u, v) = phi([u, v]), a one-hidden-layer ReLU MLP (the notebook:
  hidden 200), evaluated on all B^2 pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _shift_network(in_features: int, hidden: int, out_features: int, init_scale: float) -> nn.Sequential:
    """``Linear -> ReLU -> Linear -> ReLU -> Linear`` whose last layer starts at std ``init_scale``."""
    network = nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_features)
    )
    nn.init.normal_(network[-1].weight, std=init_scale)
    nn.init.zeros_(network[-1].bias)
    return network


class AdditiveCoupling(nn.Module):
    """y_B = x_B + t(x_A), y_A = x_A, for a fixed split of the features into A and B.

    Args:
        dim: number of features D (>= 2).
        parity: 0 transforms the odd-indexed features conditioned on the even ones, 1 the reverse.
        hidden: width of the two hidden layers of t.
        init_scale: standard deviation of t's last layer at initialisation.
    """

    def __init__(self, dim: int, parity: int, hidden: int, init_scale: float):
        super().__init__()
        index = torch.arange(dim)
        # index buffers (not saved: they follow from dim and parity) move with the module
        self.register_buffer("conditioner", index[index % 2 == parity], persistent=False)
        self.register_buffer("transformed", index[index % 2 != parity], persistent=False)
        self.shift = _shift_network(len(self.conditioner), hidden, len(self.transformed), init_scale)

    def forward(self, x: Tensor) -> Tensor:
        shift = self.shift(x[:, self.conditioner])  # bf16 under autocast; the flow's state stays in x's dtype
        return x.index_add(1, self.transformed, shift.to(x.dtype))

    def inverse(self, y: Tensor) -> Tensor:
        shift = self.shift(y[:, self.conditioner])
        return y.index_add(1, self.transformed, -shift.to(y.dtype))


class RealNVP(nn.Module):
    """``depth`` additive couplings that alternate which half of the features they shift.

    Args:
        dim: number of features D of the view (>= 2).
        depth: number of coupling layers (the paper: 30).
        hidden: width of each coupling's two hidden layers (the paper: 512).
        init_scale: std of each shift network's last layer at initialisation (the notebook: 1e-4).

    Shape:
        ``(B, D) -> (B, D)``; :meth:`inverse` undoes :meth:`forward`;
        :meth:`log_abs_det_jacobian` is ``(B,)`` zeros.
    """

    def __init__(self, dim: int, depth: int = 30, hidden: int = 512, init_scale: float = 1e-4):
        super().__init__()
        _positive_int("depth", depth)
        _positive_int("hidden", hidden)
        if _positive_int("dim", dim) < 2:
            raise ValueError(f"RealNVP needs dim >= 2 to split the features into two halves, got {dim}")
        self.couplings = nn.ModuleList(AdditiveCoupling(dim, k % 2, hidden, init_scale) for k in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for coupling in self.couplings:
            x = coupling(x)
        return x

    def inverse(self, y: Tensor) -> Tensor:
        for coupling in reversed(self.couplings):
            y = coupling.inverse(y)
        return y

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        """log |det d forward / dx| per example: 0, since every coupling is unit-triangular."""
        return x.new_zeros(x.shape[0])


class SkipMLP(nn.Module):
    """``depth`` residual blocks h <- h + f(h), f a two-hidden-layer ReLU MLP of width ``hidden``.

    Not invertible in general: f is unconstrained, so training may make a block fold space. At
    initialisation every f is within ``init_scale`` of 0 and the whole map near the identity.

    Shape: ``(B, D) -> (B, D)``.
    """

    def __init__(self, dim: int, depth: int = 30, hidden: int = 512, init_scale: float = 1e-4):
        super().__init__()
        _positive_int("dim", dim)
        _positive_int("depth", depth)
        _positive_int("hidden", hidden)
        self.blocks = nn.ModuleList(_shift_network(dim, hidden, dim, init_scale) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


class BilinearCritic(nn.Module):
    """f(u, v) = u^T W v, W ``(D1, D2)`` initialised like ``nn.Linear(D2, D1)``."""

    def __init__(self, dim1: int, dim2: int):
        super().__init__()
        self.linear = nn.Linear(_positive_int("dim2", dim2), _positive_int("dim1", dim1), bias=False)

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return u @ self.linear(v).T


class SeparableCritic(nn.Module):
    """f(u, v) = phi1(u)^T phi2(v), each phi ``Linear(D, hidden) -> ReLU -> Linear(hidden, embed)``."""

    def __init__(self, dim1: int, dim2: int, hidden: int = 100, embed: int = 100):
        super().__init__()
        _positive_int("hidden", hidden)
        _positive_int("embed", embed)
        self.phi1 = nn.Sequential(nn.Linear(_positive_int("dim1", dim1), hidden), nn.ReLU(), nn.Linear(hidden, embed))
        self.phi2 = nn.Sequential(nn.Linear(_positive_int("dim2", dim2), hidden), nn.ReLU(), nn.Linear(hidden, embed))

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return self.phi1(u) @ self.phi2(v).T


class ConcatCritic(nn.Module):
    """f(u, v) = w^T ReLU(A [u; v] + a) + c, on every pair (u_i, v_j) of the batch.

    The first layer is split, ``A [u; v] = A_u u + A_v v``, so the B^2 pairs cost two ``(B, hidden)``
    products and one ``(B, B, hidden)`` sum instead of a ``(B^2, D1 + D2)`` input.
    """

    def __init__(self, dim1: int, dim2: int, hidden: int = 200):
        super().__init__()
        self.dim1 = _positive_int("dim1", dim1)
        self.first = nn.Linear(dim1 + _positive_int("dim2", dim2), _positive_int("hidden", hidden))
        self.last = nn.Linear(hidden, 1)

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        weight_u, weight_v = self.first.weight[:, : self.dim1], self.first.weight[:, self.dim1 :]
        hidden = F.relu((u @ weight_u.T)[:, None, :] + (v @ weight_v.T)[None, :, :] + self.first.bias)
        return self.last(hidden).squeeze(-1)

    def pair(self, u: Tensor, v: Tensor) -> Tensor:
        """f(u_i, v_i) for matched rows, computed the plain way (for tests)."""
        return self.last(F.relu(self.first(torch.cat([u, v], dim=1)))).squeeze(-1)
