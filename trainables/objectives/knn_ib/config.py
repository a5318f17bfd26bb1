"""The config of ``knn_ib`` (Kirsch, Lyle and Gal 2020: IB with k-NN entropies and zero-entropy noise). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainables.config import DATASET_CLASSES, ENCODER_NAMES, RESNET_STEMS, Config, Rule, nonnegative, param, positive


def _class_balanced_with_k_per_class(trial) -> bool:
    """H[Z|Y] is estimated per class within each batch: every class in every batch, more than k examples of each."""
    per_class = trial["batch_size"] // DATASET_CLASSES[trial["dataset"]]
    return trial["batch_sampler"] == "class_balanced" and per_class > trial["k"]


@dataclass(frozen=True)
class KnnIbConfig(Config):
    beta: float = param(0.5, "the paper's beta'' in [0, 1): loss = H[Z|Y] + (beta - 1) H[Z]", low=0, high=1,
                        high_open=True)
    k: int = positive(1, "the k-th nearest neighbour of the entropy estimates")
    noise: bool = param(True, "add zero-entropy noise N(0, I/(2 pi e)) to the latent in training (paper: yes; "
                              "false = ablation)")
    encoder: str = param("resnet18", "resnet18 (the paper's), small_conv (digits, MNIST) or mlp (hidden_dim-hidden_dim-"
                                     "feature_dim on flat pixels)", choices=ENCODER_NAMES)
    hidden_dim: int = positive(1024, "width of the mlp encoder's two ReLU layers")
    stem: str = param("cifar", "resnet18 stem: cifar (3x3 conv, no max-pool) or imagenet", choices=RESNET_STEMS)
    feature_dim: int = positive(128, "small_conv's output width")
    latent_dim: int = positive(256, "K, a linear layer on the encoder's features (paper: 256)")
    decoder_width: int = positive(1024, "residual decoder fitted after training (paper: 1024) ...")
    decoder_blocks: int = nonnegative(5, "... with this many residual blocks (paper: 5) ...")
    decoder_epochs: int = positive(20, "... trained for this many epochs on the frozen encoder's training latents")

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("batch_sampler", "batch_size", "k"), _class_balanced_with_k_per_class,
             "expected batch_sampler='class_balanced' and batch_size // classes > k (H[Z|Y] is estimated per class "
             "within each batch)", ({"batch_sampler": "random"}, {"batch_size": 10})),
    )
