"""The deterministic encoders of trainables.models: stems, feature sizes, non-negative features."""

import pytest
import torch
from torch import nn

from trainables.models import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ResNet18Encoder,
    SmallConvEncoder,
    pixel_normalization,
)


def test_cifar_stem_is_a_3x3_conv_without_max_pool():
    encoder = ResNet18Encoder(3, "cifar")
    conv1 = encoder.backbone.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.in_channels == 3
    assert isinstance(encoder.backbone.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in encoder.modules())


def test_imagenet_stem_is_torchvisions_7x7_conv_and_max_pool():
    encoder = ResNet18Encoder(3, "imagenet")
    conv1 = encoder.backbone.conv1
    assert conv1.kernel_size == (7, 7) and conv1.stride == (2, 2)
    assert isinstance(encoder.backbone.maxpool, nn.MaxPool2d)


@pytest.mark.parametrize(("stem", "shape"), [("cifar", (3, 32, 32)), ("imagenet", (1, 28, 28))])
def test_resnet_features_are_512_non_negative_and_take_the_input_channels(stem, shape):
    torch.manual_seed(0)
    encoder = ResNet18Encoder(shape[0], stem).eval()
    assert encoder.backbone.conv1.in_channels == shape[0]
    assert not isinstance(encoder.backbone.fc, nn.Linear)  # the classifier is dropped
    with torch.no_grad():
        h = encoder(torch.randn(2, *shape))
    assert h.shape == (2, 512) == (2, encoder.feature_dim)
    assert (h >= 0).all() and (h > 0).any()  # post-ReLU, and not all dead


@pytest.mark.parametrize("feature_dim", [1, 24])
def test_small_conv_features_have_feature_dim_entries_and_are_non_negative(feature_dim):
    torch.manual_seed(0)
    encoder = SmallConvEncoder(1, feature_dim)
    h = encoder(torch.randn(5, 1, 8, 8))
    assert h.shape == (5, feature_dim) and encoder.feature_dim == feature_dim
    assert (h >= 0).all()


def test_pixel_normalization_uses_cifar_statistics_for_three_channels_and_half_otherwise():
    x = torch.rand(2, 3, 4, 4)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(pixel_normalization(3)(x), (x - mean) / std)
    torch.testing.assert_close(pixel_normalization(1)(torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)),
                               torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: ResNet18Encoder(3, "tiny"), "stem.*cifar, imagenet.*'tiny'"),
    (lambda: SmallConvEncoder(1, 0), "feature_dim.*0"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
