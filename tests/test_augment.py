"""Batched view generation: crop geometry, flips, colour jitter, grayscale, randomness, errors."""

import pytest
import torch

from trainables.augment import (
    LUMA,
    ViewAugmentation,
    color_jitter,
    grayscale,
    random_grayscale,
    random_resized_crop,
    rotate_hue,
)


def images(b=8, c=3, h=8, w=8, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_full_crop_without_flip_is_the_identity():
    x = images()
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x)


def test_full_crop_with_certain_flip_mirrors_every_image():
    x = images()
    out = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_probability=1.0)
    torch.testing.assert_close(out, x.flip(-1))


def test_crop_zooms_by_the_box_width():
    """A horizontal ramp cropped to a box a quarter of the area (half the width) rises half as fast."""
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(4, 1, 16, 16).contiguous()
    out = random_resized_crop(ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=torch.Generator().manual_seed(1))
    steps = out[..., 1:] - out[..., :-1]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.5))
    # the boxes differ between examples (random positions)
    assert out[:, 0, 0, 0].unique().numel() > 1


def test_views_have_the_shape_and_range_of_the_input_and_differ_per_example():
    x = images(b=16)
    augment = ViewAugmentation(crop_scale_min=0.3)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    same = images(b=1).expand(16, -1, -1, -1)
    views = augment(same, torch.Generator().manual_seed(0))
    assert (views - views[:1]).abs().flatten(1).amax(dim=1)[1:].min() > 0


def test_a_seeded_generator_and_the_global_rng_both_reproduce_the_views():
    x, augment = images(), ViewAugmentation()
    torch.testing.assert_close(augment(x, torch.Generator().manual_seed(5)), augment(x, torch.Generator().manual_seed(5)))
    torch.manual_seed(7)
    first = augment(x)
    torch.manual_seed(7)
    torch.testing.assert_close(augment(x), first)
    assert not torch.equal(augment(x), first)


def test_jitter_of_strength_zero_or_probability_zero_changes_nothing():
    x = images()
    torch.testing.assert_close(color_jitter(x, strength=0.0, probability=1.0), x)
    torch.testing.assert_close(color_jitter(x, strength=1.0, probability=0.0), x)
    assert not torch.allclose(color_jitter(x, strength=1.0, probability=1.0), x)


def test_jitter_of_one_channel_is_brightness_and_contrast_only():
    """On one channel the output is an affine map of each image (brightness then contrast), clipped."""
    x = 0.25 + 0.5 * images(c=1)  # away from 0 and 1, so a mild jitter clips nothing
    out = color_jitter(x, strength=0.1, probability=1.0, generator=torch.Generator().manual_seed(0))
    for a, b in zip(x.flatten(1), out.flatten(1)):
        design = torch.stack([a, torch.ones_like(a)], dim=1)
        solution = torch.linalg.lstsq(design, b.unsqueeze(1)).solution
        torch.testing.assert_close(design @ solution, b.unsqueeze(1), atol=1e-5, rtol=0)


def test_grayscale_is_a_no_op_on_one_channel_and_luma_on_three():
    gray = images(c=1)
    torch.testing.assert_close(random_grayscale(gray, probability=1.0), gray)
    x = images()
    out = random_grayscale(x, probability=1.0)
    luma = sum(w * x[:, i] for i, w in enumerate(LUMA))
    for channel in range(3):
        torch.testing.assert_close(out[:, channel], luma)
    torch.testing.assert_close(random_grayscale(x, probability=0.0), x)


def test_hue_rotation_keeps_luma_and_a_full_turn_is_the_identity():
    x = images()
    angle = torch.linspace(-3, 3, len(x))
    torch.testing.assert_close(grayscale(rotate_hue(x, angle)), grayscale(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate_hue(x, torch.full((len(x),), 2 * torch.pi)), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("call, message", [
    (lambda: random_resized_crop(images(), scale=(0.0, 1.0)), r"scale must satisfy 0 < low <= high <= 1, got \(0.0, 1.0\)"),
    (lambda: random_resized_crop(images(), flip_probability=1.5), "flip_probability must be in \\[0, 1\\], got 1.5"),
    (lambda: color_jitter(images(), strength=-1.0), "strength must be >= 0, got -1.0"),
    (lambda: color_jitter(images(c=2), strength=0.5), "expected 1 or 3 channels, got 2"),
    (lambda: random_grayscale(images(), probability=2.0), "probability must be in \\[0, 1\\], got 2.0"),
    (lambda: ViewAugmentation(crop_scale_min=0.0), "crop_scale_min must be in \\(0, 1\\], got 0.0"),
    (lambda: ViewAugmentation(grayscale_probability=-0.1), "grayscale_probability must be in \\[0, 1\\], got -0.1"),
])
def test_errors_name_the_bad_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()
