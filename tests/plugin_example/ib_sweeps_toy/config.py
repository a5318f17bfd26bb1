"""The config of ``toy_linear``: the weight of its rate term. Torch-free (the driver validates sweeps with it)."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import Config, nonnegative


@dataclass(frozen=True)
class ToyConfig(Config):
    beta: float = nonnegative(0.01, "weight of the rate term, KL(N(f(x), I) || N(0, I))")
