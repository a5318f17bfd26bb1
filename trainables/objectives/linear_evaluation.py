"""The linear evaluation shared by the self-supervised objectives (``simclr_dib``, ``hybrid``).

A self-supervised objective has no classifier of its own; its ``test/acc`` is the test accuracy of
a linear probe (:func:`trainables.evaluation.probes.linear_probe`) fitted on the frozen
representation of the whole training split, and ``train/acc`` that probe's training accuracy:
the "linear evaluation" of SimCLR and of Zhang et al.'s Table I. The probe is fitted after every
``probe_every``-th epoch and after the last one, since a fit on the whole training split can cost
more than an epoch; in the other epochs both are reported as NaN ("not measured"), because Tune
requires the metric it optimises in every result.

A shared module, not a slice (the registry lists packages only). It stays beside the objectives
rather than in :mod:`trainables.evaluation.probes` because it is the objectives' side of the probe:
when to fit it and what an epoch without one reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from trainables.evaluation.probes import linear_probe


@torch.no_grad()
def encode(features: Callable[[Tensor], Tensor], x: Tensor, batch_size: int) -> Tensor:
    """``features`` applied to ``x`` in batches of ``batch_size``, flattened to ``(N, D)``."""
    return torch.cat([features(x[i : i + batch_size]).flatten(1).float() for i in range(0, len(x), batch_size)])


def probe_due(epoch: int, probe_every: int, epochs: int) -> bool:
    """Whether epoch ``epoch`` (1-based) of ``epochs`` ends with a probe."""
    return epoch % probe_every == 0 or epoch == epochs


NOT_MEASURED = {"train/acc": math.nan, "test/acc": math.nan}
"""What an epoch without a probe reports."""


def probe(features: Callable[[Tensor], Tensor], data, batch_size: int) -> dict[str, float]:
    """``{"train_acc", "test_acc"}`` of a linear probe on ``features`` of ``data``'s two splits."""
    return linear_probe(encode(features, data.train_x, batch_size), data.train_y,
                        encode(features, data.test_x, batch_size), data.test_y)
