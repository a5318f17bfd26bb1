"""The config of ``ce``, the deterministic cross-entropy baseline: the encoder and its widths. Torch-free.

The keys and their meanings are dib's (:class:`trainables.objectives.dib.config.DibConfig`), so that a zoo sweep
gives every member one backbone with the same keys; ``ce`` has no compression weight.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import ENCODER_NAMES, RESNET_STEMS, Config, param, positive


@dataclass(frozen=True)
class CeConfig(Config):
    encoder: str = param("mlp", "resnet18 (512-d features), small_conv (feature_dim features, for digits) or mlp "
                                "(hidden_dim-hidden_dim-feature_dim on flat pixels, the DIB paper's MNIST code)",
                         choices=ENCODER_NAMES)
    hidden_dim: int = positive(1024, "width of the mlp encoder's two ReLU layers (the DIB paper's MNIST code: 1024)")
    feature_dim: int = positive(256, "K, the width of the representation h that the classifier reads (small_conv "
                                     "and mlp; resnet18's is 512)")
    stem: str = param("cifar", "resnet18 stem: cifar (3x3 conv, no max-pool) or imagenet (7x7 conv + max-pool)",
                      choices=RESNET_STEMS)
