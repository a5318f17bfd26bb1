"""Encoders and heads that objectives build on.

Models here know nothing of losses: an encoder maps a batch of images ``(B, C, H, W)`` to its
representation, and each objective in ``trainables/objectives`` combines them into terms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import ENCODER_NAMES, RESNET_STEMS

ENCODERS = ENCODER_NAMES  # the names build_encoder accepts; the configs' choices, declared once in trainables.config

# --- MLP encoders ---


def mlp_layers(in_features: int, hidden_dim: int, out_features: int, depth: int) -> list[nn.Module]:
    """``Flatten -> [Linear -> ReLU] x depth -> Linear(hidden_dim, out_features)``, the trunk of both MLP encoders.

    ValueError names any size that is not an int >= 1.
    """
    for name, value in (("in_features", in_features), ("hidden_dim", hidden_dim),
                        ("out_features", out_features), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    return [*layers, nn.Linear(width, out_features)]



class GaussianMLPEncoder(nn.Module):
    """MLP encoder of a diagonal Gaussian posterior p(z|x) = N(mean(x), diag(std(x)^2)).

    The VIB encoder of Alemi et al. (2017): ``Flatten -> [Linear -> ReLU] x depth ->
    Linear(hidden_dim, 2 * latent_dim)``; the paper's MNIST model is 784-1024-1024-2K (depth 2,
    K = 256). The second half of the output, rho, becomes ``std = softplus(rho - 5)``, as in the
    official VIB demo: the shift starts the posterior narrow (std about 0.0067 at rho = 0).

    Args:
        in_features: number of input features, C * H * W.
        hidden_dim: width of each hidden layer.
        latent_dim: K, the number of latent dimensions.
        depth: number of hidden ``Linear -> ReLU`` layers (>= 1).

    Shape:
        input ``(B, C, H, W)`` (or any ``(B, ...)`` with ``in_features`` elements per example);
        returns ``(mean, std)``, each ``(B, latent_dim)``.
    """

    def __init__(self, in_features: int, hidden_dim: int, latent_dim: int, depth: int = 2):
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an int >= 1, got {latent_dim!r}")
        self.net = nn.Sequential(*mlp_layers(in_features, hidden_dim, 2 * latent_dim, depth))
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, rho = self.net(x).split(self.latent_dim, dim=-1)
        return mean, F.softplus(rho - 5.0)


# --- deterministic convolutional encoders (the ``dib`` objective) ---

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel mean and std of the CIFAR-10 training pixels in [0, 1] (the standard values)."""


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with ``mean`` and ``std`` kept as buffers.

    Sits at the front of a model so that objectives and attacks both see pixels in [0, 1].
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need one value per channel and std > 0, got {mean!r} and {std!r}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def pixel_normalization(channels: int) -> Normalize:
    """CIFAR-10's statistics for 3-channel images; ``0.5 / 0.5`` (pixels to [-1, 1]) otherwise.

    Greyscale datasets (MNIST, digits) share the fixed 0.5 / 0.5 rather than per-dataset
    statistics, so a model's input scaling does not depend on which subset it was trained on.
    """
    if channels == 3:
        return Normalize(CIFAR10_MEAN, CIFAR10_STD)
    return Normalize((0.5,) * channels, (0.5,) * channels)


class ResNet18Encoder(nn.Module):
    """torchvision's ResNet-18 (``weights=None``) without its classifier: images -> 512-d ``h``.

    ``h`` is the global-average-pooled output of the last residual stage, which ends in a ReLU, so
    ``h >= 0``. Two stems:

    - ``"cifar"``: a 3x3 stride-1 ``conv1`` and no max-pool, the usual choice for 32x32 images
      (layer4 then sees 4x4 maps);
    - ``"imagenet"``: torchvision's 7x7 stride-2 ``conv1`` and 3x3 max-pool, as in the reference
      code of Zhang et al. (layer4 sees 1x1 maps on 32x32 inputs).

    ``conv1`` takes ``in_channels`` inputs (1 for MNIST).

    Shape: input ``(B, in_channels, H, W)``; returns ``(B, 512)``.
    """

    feature_dim = 512

    def __init__(self, in_channels: int = 3, stem: str = "cifar"):
        super().__init__()
        from torchvision.models import resnet18  # here, so the MLP-only objectives never import torchvision

        if stem not in RESNET_STEMS:
            raise ValueError(f"stem must be one of {', '.join(RESNET_STEMS)}, got {stem!r}")
        backbone = resnet18(weights=None)
        if stem == "cifar":
            backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            backbone.maxpool = nn.Identity()
        elif in_channels != 3:
            backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        backbone.fc = nn.Identity()  # forward() now ends at flatten(avgpool(layer4(...)))
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)


class SmallConvEncoder(nn.Module):
    """A three-layer conv net for 8x8 digits: images -> ``feature_dim``-d ``h >= 0``.

    ``[Conv3x3 -> ReLU]`` with 32, 64 and ``feature_dim`` channels (the second with stride 2), then
    global average pooling. Works on any input size. No BatchNorm, so train and eval mode compute
    the same function: under ``dib``'s rounding, BatchNorm's batch vs running statistics move
    features across the rounding thresholds, and a higher beta then failed to give fewer active
    dimensions.

    Shape: input ``(B, in_channels, H, W)``; returns ``(B, feature_dim)``.
    """

    def __init__(self, in_channels: int = 1, feature_dim: int = 64):
        super().__init__()
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be an int >= 1, got {feature_dim!r}")
        layers: list[nn.Module] = []
        for width_in, width_out, stride in ((in_channels, 32, 1), (32, 64, 2), (64, feature_dim, 1)):
            layers += [nn.Conv2d(width_in, width_out, 3, stride=stride, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = feature_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPEncoder(nn.Module):
    """A deterministic MLP on flattened pixels: ``Flatten -> [Linear -> ReLU] x depth -> Linear -> ReLU``.

    The encoder of the DIB paper's own MNIST code (784-1024-1024-256) and the deterministic twin of
    :class:`GaussianMLPEncoder`, so that objectives compared on MNIST share one backbone. The last ReLU makes
    ``h >= 0`` as the conv encoders' pooled features are, so that ``dib``'s rounding gives sparse codes.

    Shape: input ``(B, C, H, W)`` with ``in_features = C * H * W``; returns ``(B, feature_dim)``.
    """

    def __init__(self, in_features: int, hidden_dim: int, feature_dim: int, depth: int = 2):
        super().__init__()
        self.net = nn.Sequential(*mlp_layers(in_features, hidden_dim, feature_dim, depth), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def build_encoder(name: str, input_shape: tuple[int, ...], *, stem: str, feature_dim: int,
                  hidden_dim: int = 1024) -> nn.Module:
    """The deterministic encoder an objective's config names, for inputs of ``input_shape`` ``(C, H, W)``:
    ``resnet18`` (512-d, ``stem``), ``small_conv`` (``feature_dim``-d) or ``mlp`` (``hidden_dim``-wide layers,
    ``feature_dim``-d). All expose ``.feature_dim``."""
    if name == "resnet18":
        return ResNet18Encoder(input_shape[0], stem)
    if name == "small_conv":
        return SmallConvEncoder(input_shape[0], feature_dim)
    if name == "mlp":
        return MLPEncoder(math.prod(input_shape), hidden_dim, feature_dim)
    raise ValueError(f"encoder {name!r}: expected one of {', '.join(ENCODERS)}")
