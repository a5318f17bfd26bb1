"""Random views of a batch of images for contrastive learning, generated batched on its device.

SimCLR's augmentation (Chen et al. 2020, appendix A) and MoCo-v2's (Chen, Fan, Girshick and He
2020) as tensor operations: every example of the batch gets its own random resized crop,
horizontal flip, colour jitter and grayscale, in one pass, with no per-image Python loop and no
DataLoader (docs/benchmarks.md, Data pipeline). Pixels are float in [0, 1], shape ``(B, C, H, W)``.

- Random resized crop: a box of area ``U(crop_scale_min, 1)`` of the image and aspect ratio
  log-uniform in [3/4, 4/3], placed uniformly at random inside the image, resampled to ``H x W``
  bilinearly (``affine_grid`` + ``grid_sample``). torchvision retries a box that does not fit ten
  times and then falls back to a centre crop; here its width and height are clipped to the image
  instead. The horizontal flip is the same affine map with its x axis negated.
- Colour jitter, applied to an example with probability ``jitter_probability``: brightness,
  contrast and saturation factors uniform in ``[1 - 0.8 s, 1 + 0.8 s]`` and a hue rotation uniform
  in ``[-0.2 s, 0.2 s]`` of a turn, for strength ``s`` (SimCLR's parametrisation; s = 0.5 gives
  MoCo-v2's and SimCLR-CIFAR's 0.4 / 0.4 / 0.4 / 0.1). torchvision applies the four in a random
  order and shifts hue in HSV; here the order is fixed (brightness, contrast, saturation, hue) and
  hue is a rotation of the chroma plane of YIQ, a linear stand-in that is cheap in a batch.
- Grayscale with probability ``grayscale_probability`` (ITU-R 601 luma, copied to the three
  channels).

One-channel images (digits, MNIST): colour jitter reduces to brightness and contrast, and
grayscale is a no-op (the image already is one).

Randomness: every function takes a ``generator``; ``None`` draws from torch's global RNG, which the
harness seeds from the trial's ``seed`` and saves in every checkpoint, so a resumed trial draws the
same views. The objectives pass ``None`` while training and a fixed-seed generator when evaluating
(so the test loss uses the same views every epoch and evaluation does not move the global RNG).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale
# RGB <-> YIQ; hue rotates (I, Q) about the Y axis.
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Luma weights ``(1, 3, 1, 1)``, RGB->YIQ and its inverse, copied to ``device`` once per process:
    a fresh ``torch.tensor(..., device=cuda)`` in every step would be a blocking host-to-device copy."""
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
    luma = torch.tensor(LUMA, dtype=dtype).view(1, 3, 1, 1)
    return luma.to(device), to_yiq.to(dtype).to(device), torch.linalg.inv(to_yiq).to(dtype).to(device)


def _uniform(shape, low: float, high: float, x: Tensor, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)


def _per_example(x: Tensor, value: Tensor) -> Tensor:
    return value.view(-1, *([1] * (x.dim() - 1)))


def random_resized_crop(x: Tensor, *, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_probability: float = 0.0,
                        generator: torch.Generator | None = None) -> Tensor:
    """Each example cropped to a random box and resized back to ``H x W``, optionally flipped.

    Args:
        x: ``(B, C, H, W)`` images.
        scale: range of the box's area as a fraction of the image's, ``0 < low <= high <= 1``.
        ratio: range of the box's aspect ratio (width / height), log-uniform.
        flip_probability: probability of a horizontal flip of each example.
        generator: source of randomness (``None``: the global RNG).
    """
    low, high = scale
    if not 0 < low <= high <= 1:
        raise ValueError(f"random_resized_crop: scale must satisfy 0 < low <= high <= 1, got {scale!r}")
    if not 0 <= flip_probability <= 1:
        raise ValueError(f"random_resized_crop: flip_probability must be in [0, 1], got {flip_probability!r}")
    b = x.shape[0]
    area = _uniform((b,), low, high, x, generator)
    aspect = torch.exp(_uniform((b,), math.log(ratio[0]), math.log(ratio[1]), x, generator))
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image's width and height
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    # box centres in affine_grid's [-1, 1] coordinates, uniform over the positions that fit
    centre_x = (1 - width) * _uniform((b,), -1.0, 1.0, x, generator)
    centre_y = (1 - height) * _uniform((b,), -1.0, 1.0, x, generator)
    flip = torch.rand((b,), generator=generator, device=x.device) < flip_probability
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = torch.where(flip, -width, width)
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: Tensor, *, strength: float, probability: float = 0.8,
                 generator: torch.Generator | None = None) -> Tensor:
    """Brightness, contrast, saturation and hue jitter of strength ``s`` (module docstring).

    One-channel images get brightness and contrast only. Values are clipped to [0, 1] after each
    step, as torchvision does.
    """
    if not strength >= 0:
        raise ValueError(f"color_jitter: strength must be >= 0, got {strength!r}")
    if not 0 <= probability <= 1:
        raise ValueError(f"color_jitter: probability must be in [0, 1], got {probability!r}")
    b, channels = x.shape[:2]
    if channels not in (1, 3):
        raise ValueError(f"color_jitter: expected 1 or 3 channels, got {channels}")
    spread = 0.8 * strength
    apply = torch.rand((b,), generator=generator, device=x.device) < probability
    # a factor of 1 (and a hue angle of 0) leaves the examples that are not jittered unchanged
    brightness = torch.where(apply, _uniform((b,), max(0.0, 1 - spread), 1 + spread, x, generator), 1.0)
    contrast = torch.where(apply, _uniform((b,), max(0.0, 1 - spread), 1 + spread, x, generator), 1.0)
    x = (x * _per_example(x, brightness)).clamp(0, 1)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * _per_example(x, contrast) + mean).clamp(0, 1)
    if channels == 1:
        return x
    saturation = torch.where(apply, _uniform((b,), max(0.0, 1 - spread), 1 + spread, x, generator), 1.0)
    gray = grayscale(x)
    x = ((x - gray) * _per_example(x, saturation) + gray).clamp(0, 1)
    angle = torch.where(apply, _uniform((b,), -0.2 * strength, 0.2 * strength, x, generator), 0.0) * 2 * math.pi
    return rotate_hue(x, angle).clamp(0, 1)


def rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Rotate the chroma (I, Q) of YIQ by ``angle`` radians per example; luma is kept."""
    _, to_yiq, from_yiq = _constants(x.device, x.dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(len(angle), 3, 3, device=x.device, dtype=x.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    matrix = from_yiq @ rotation @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", matrix, x)


def grayscale(x: Tensor) -> Tensor:
    """Luma of each pixel, ``(B, 1, H, W)``; a one-channel image is its own luma."""
    if x.shape[1] == 1:
        return x
    return (x * _constants(x.device, x.dtype)[0]).sum(dim=1, keepdim=True)


def random_grayscale(x: Tensor, *, probability: float, generator: torch.Generator | None = None) -> Tensor:
    """Each example replaced by its luma (in every channel) with ``probability``; 1 channel: no-op."""
    if not 0 <= probability <= 1:
        raise ValueError(f"random_grayscale: probability must be in [0, 1], got {probability!r}")
    if x.shape[1] == 1:
        return x
    apply = torch.rand((x.shape[0],), generator=generator, device=x.device) < probability
    return torch.where(apply.view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)


@dataclass(frozen=True)
class ViewAugmentation:
    """One random view per example: crop, flip, colour jitter, grayscale (module docstring).

    Defaults are SimCLR's for CIFAR-10 (colour strength 0.5); MoCo-v2's differ only in
    ``crop_scale_min = 0.2``.
    """

    crop_scale_min: float = 0.08  # smallest crop area, as a fraction of the image
    flip_probability: float = 0.5
    jitter_strength: float = 0.5  # s: brightness, contrast, saturation 0.8 s, hue 0.2 s
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2

    def __post_init__(self):
        if not 0 < self.crop_scale_min <= 1:
            raise ValueError(f"crop_scale_min must be in (0, 1], got {self.crop_scale_min!r}")
        if not self.jitter_strength >= 0:
            raise ValueError(f"jitter_strength must be >= 0, got {self.jitter_strength!r}")
        for name in ("flip_probability", "jitter_probability", "grayscale_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = random_resized_crop(x, scale=(self.crop_scale_min, 1.0), flip_probability=self.flip_probability,
                                generator=generator)
        x = color_jitter(x, strength=self.jitter_strength, probability=self.jitter_probability, generator=generator)
        return random_grayscale(x, probability=self.grayscale_probability, generator=generator)
