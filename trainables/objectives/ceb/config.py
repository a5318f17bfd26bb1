"""The config of ``ceb`` (Fischer 2020, the Conditional Entropy Bottleneck): the residual-information weight, the
forward encoder and the classifier. Torch-free.

``beta`` is the weight of I(X;Z|Y); the robustness paper (Fischer and Alemi 2020) names its sweeps by
rho = -ln(beta), so beta = exp(-rho).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import ENCODER_NAMES, RESNET_STEMS, Config, nonnegative, param, positive

CLASSIFIERS = ("consistent", "softmax")


@dataclass(frozen=True)
class CebConfig(Config):
    beta: float = nonnegative(0.05, "weight of the residual information I(X;Z|Y) (rho = -ln beta; 0.05 is rho 3)")
    latent_dim: int = positive(256, "K, the size of Z (the VIB paper's 256, so that CEB and VIB are matched)")
    encoder: str = param("mlp", "forward encoder e(z|x): mlp (VIB's Gaussian MLP), or a conv network with a Gaussian "
                                "head: resnet18 (512-d features) or small_conv (feature_dim features)",
                         choices=ENCODER_NAMES)
    hidden_dim: int = positive(1024, "width of the mlp encoder's two ReLU layers (VIB paper: 1024)")
    stem: str = param("cifar", "resnet18 stem: cifar (3x3 conv, no max-pool) or imagenet (7x7 conv + max-pool)",
                      choices=RESNET_STEMS)
    feature_dim: int = positive(128, "small_conv's output width")
    classifier: str = param("consistent", "c(y|z): consistent (Bayes' rule on b(z|y), uniform p(y), no parameters) "
                                          "or softmax (a learned linear layer, as VIB's decoder)", choices=CLASSIFIERS)
    eval_samples: int = positive(12, "samples of z averaged at test time for test/acc_mc (as vib)")
