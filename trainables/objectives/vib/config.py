"""The config of ``vib`` (Alemi et al. 2017): the KL weight and the encoder's sizes. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import Config, nonnegative, positive


@dataclass(frozen=True)
class VibConfig(Config):
    beta: float = nonnegative(1e-3, "weight of the KL (rate) term")
    latent_dim: int = positive(256, "K, the bottleneck size (paper: 256 and 2)")
    hidden_dim: int = positive(1024, "width of the two ReLU layers of the encoder (paper: 1024)")
    eval_samples: int = positive(12, "posterior samples averaged at test time for test/acc_mc (paper: 12)")
