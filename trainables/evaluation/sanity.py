"""The measurements behind the gradient-masking checks that are not gradient attacks of their own.

Carlini et al., "On Evaluating Adversarial Robustness" (2019), section 5: a gradient that is zero
for some examples, or a gradient attack that blind random noise outdoes, are the signs of masking
that orderings of gradient attacks cannot show. :mod:`trainables.evaluation.masking` turns these
into checks.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from trainables.evaluation.attacks import BATCH_SIZE, LogitsFn, _chunks, _gradient_and_probs, predict


def logit_margin(logits: Tensor, y: Tensor) -> Tensor:
    """``Z_y - max_{i != y} Z_i`` per example, shape ``(batch,)``.

    Its input gradient is zero only where the logits do not depend differentiably on the input;
    unlike the cross-entropy's, it does not vanish when the softmax saturates on a confident example.
    """
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    best_other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return true_logit - best_other


def zero_gradient(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, eot_samples: int = 1,
                  batch_size: int = BATCH_SIZE) -> Tensor:
    """Per example, whether the input gradient of the logit margin (EOT mean) is exactly zero.

    An output cut from ``x`` in the graph (``round(h).detach()`` then trainable layers, an argmax
    used as an index, a numpy round trip) has no gradient at all and counts as zero.

    Returns:
        A bool tensor of shape ``(len(x),)``.
    """
    parts = [_gradient_and_probs(logits_fn, xb, yb, eot_samples, logit_margin)[0].flatten(1).eq(0).all(dim=1)
             for xb, yb in _chunks(x, y, batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=x.device)


@torch.no_grad()
def uniform_noise_robust(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, epsilon: float, samples: int,
                         generator: torch.Generator, eot_samples: int = 1, batch_size: int = BATCH_SIZE) -> Tensor:
    """Which examples survive ``samples`` draws of uniform noise in the L-inf ball of radius ``epsilon``.

    Each draw is ``clip(x + U(-epsilon, epsilon), 0, 1)``; an example survives when its clean
    decision and its decision on every draw are correct. A blind attack: a gradient attack at the
    same epsilon that leaves more examples standing is not using its gradient.

    Returns:
        A bool tensor of shape ``(len(x),)``.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"uniform_noise_robust: samples must be an int >= 1, got {samples!r}")
    parts = []
    for xb, yb in _chunks(x, y, batch_size):
        robust = predict(logits_fn, xb, eot_samples=eot_samples) == yb
        for _ in range(samples):
            noise = torch.rand(xb.shape, generator=generator, device=generator.device, dtype=xb.dtype).to(xb.device)
            noisy = (xb + (2 * noise - 1) * epsilon).clamp(0.0, 1.0)
            robust &= predict(logits_fn, noisy, eot_samples=eot_samples) == yb
        parts.append(robust)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=x.device)
