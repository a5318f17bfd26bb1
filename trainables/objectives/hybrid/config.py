"""The config of ``hybrid`` (Sinha, Song and Ermon: autoencoder + MoCo-v2 on half the latent). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainables.config import Config, Rule, nonnegative, param, positive


@dataclass(frozen=True)
class HybridConfig(Config):
    alpha: float = param(0.5, "weight of the reconstruction term; 1 - alpha weighs MoCo's InfoNCE", low=0, high=1)
    temperature: float = positive(0.07, "InfoNCE temperature (D2C code: 0.07; MoCo-v2: 0.2)")
    latent_channels: int = param(6, "latent channels at half resolution (CIFAR: 16x16x6, the paper's), even",
                                 low=2)
    hidden_channels: int = positive(64, "width of the autoencoder's residual blocks")
    head_hidden_dim: int = positive(512, "hidden width of MoCo's MLP head")
    projection_dim: int = positive(128, "MoCo's key and query dimension")
    queue_size: int = positive(65536, "negatives in MoCo's queue (D2C code: 65536)")
    momentum: float = param(0.999, "key encoder's momentum (MoCo: 0.999)", low=0, high=1, high_open=True)
    crop_scale_min: float = param(0.2, "MoCo-v2's random-resized-crop scale (0.2, 1)", low=0, high=1, low_open=True)
    jitter_strength: float = nonnegative(0.5, "MoCo-v2's colour jitter 0.4 / 0.4 / 0.4 / 0.1")
    probe_every: int = positive(10, "epochs between linear probes of the whole latent (the last always)")
    interpolation_pairs: int = nonnegative(2, "pairs of test images interpolated after training (0: none)")
    interpolation_steps: int = param(6, "images per interpolation, ends included", low=2)
    fid_weights: str = param("", "FID is not implemented: must stay empty (the report says it was skipped)")

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("latent_channels",), lambda t: t["latent_channels"] % 2 == 0,
             "expected an even number (the latent is split in two halves)", ({"latent_channels": 5},)),
        Rule(("ema_decay",), lambda t: t["ema_decay"] == 0,
             "expected 0: an EMA copy would average MoCo's queue and key encoder (already a momentum average)",
             ({"ema_decay": 0.5},)),
        Rule(("fid_weights",), lambda t: t["fid_weights"] == "",
             "expected empty: FID is not implemented (the paper's FID is of DDIM samples from the latent, which this "
             "project does not train)", ({"fid_weights": "inception.pt"},)),
    )
