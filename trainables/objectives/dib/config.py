"""The config of ``dib`` (Zhang et al., deterministic IB with a CompressAI entropy model). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import ENCODER_NAMES, ENTROPY_MODEL_NAMES, RESNET_STEMS, Config, nonnegative, param, positive


@dataclass(frozen=True)
class DibConfig(Config):
    beta: float = nonnegative(1.0, "weight of the rate (bits per dimension) term")
    encoder: str = param("resnet18", "resnet18 (512-d features), small_conv (feature_dim features, for digits) or mlp "
                                     "(hidden_dim-hidden_dim-feature_dim on flat pixels, the paper's MNIST code)",
                         choices=ENCODER_NAMES)
    hidden_dim: int = positive(1024, "width of the mlp encoder's two ReLU layers (the paper's MNIST code: 1024)")
    stem: str = param("cifar", "resnet18 stem: cifar (3x3 conv, no max-pool) or imagenet (7x7 conv + max-pool, the "
                               "paper's code)", choices=RESNET_STEMS)
    feature_dim: int = positive(128, "small_conv's output width")
    entropy_model: str = param("hyperprior", "hyperprior (mean-scale, the paper's) or factorized (EntropyBottleneck)",
                               choices=ENTROPY_MODEL_NAMES)
    warmup_epochs: int = nonnegative(5, "epochs of cross-entropy only before the rate term is added (reference: 5)")
