"""The config of ``simclr_dib`` (Zhang et al. section II.D: SimCLR with a rate term on round(h)). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import CONV_ENCODER_NAMES, ENTROPY_MODEL_NAMES, RESNET_STEMS, Config, nonnegative, param, positive


@dataclass(frozen=True)
class SimclrDibConfig(Config):
    beta: float = nonnegative(0.1, "weight of each view's rate (bits per dimension of round(h)); 0 = SimCLR")
    temperature: float = positive(0.07, "NT-Xent temperature (the paper: 0.07)")
    encoder: str = param("resnet18", "resnet18 (512-d h) or small_conv (feature_dim-d h, for digits)",
                         choices=CONV_ENCODER_NAMES)
    stem: str = param("cifar", "resnet18 stem: cifar (3x3, no max-pool) or imagenet (7x7 + max-pool)",
                      choices=RESNET_STEMS)
    feature_dim: int = positive(128, "small_conv's output width")
    entropy_model: str = param("hyperprior", "hyperprior (mean-scale, the paper's) or factorized",
                               choices=ENTROPY_MODEL_NAMES)
    warmup_epochs: int = nonnegative(0, "epochs of NT-Xent only before the rate term is added")
    projection_dim: int = positive(128, "output of the projection head (the paper: 128)")
    crop_scale_min: float = param(0.08, "smallest random-resized-crop area, fraction of the image (SimCLR: 0.08)",
                                  low=0, high=1, low_open=True)
    jitter_strength: float = nonnegative(0.5, "colour jitter strength s (SimCLR on CIFAR: 0.5)")
    probe_every: int = positive(10, "epochs between linear probes (the last epoch always has one)")
