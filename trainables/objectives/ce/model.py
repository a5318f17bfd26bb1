"""The deterministic cross-entropy baseline: the ``ce`` model.

The IB zoo's reference point (issue 19): the backbone every IB objective of the zoo uses, trained with no
compression term. A deterministic encoder f maps pixels x in [0, 1] (normalised inside the model,
:func:`trainables.models.pixel_normalization`) to ``h = f(x) >= 0``, ``(B, K)`` (every encoder of
:func:`trainables.models.build_encoder` ends in a ReLU); a linear classifier g reads ``h``. The loss is

    loss = CE(g(f(x)), y)            (in nats)

which is dib's loss at beta = 0 without the rounding (the DIB paper's "CE" row of Table II) and VIB's at beta = 0
without the noise: each IB objective adds its own rate to this, so the zoo's comparison at matched backbone isolates
what the bottleneck does.

Decisions:
- No rounding of ``h``: the baseline is the plain network the IB papers compare against, and straight-through
  rounding would itself bound what ``h`` can carry.
- No ``rate_bits``: the loss prices nothing. The information plane measures I(X;Z) of ``representation(x) = h`` with
  the common k-NN ruler (:mod:`trainables.evaluation.info_plane`), which is how the zoo places this objective
  against the others.

Terms of ``forward`` (all 0-d batch means): ``loss``, the quantity backpropagated, and ``ce``, the same value logged
as the cross-entropy of g(h) in nats. Metrics of ``evaluate``: ``acc`` and ``ce``.

Config: :class:`trainables.objectives.ce.config.CeConfig`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.models import build_encoder, pixel_normalization
from trainables.objectives.base import Objective


class CrossEntropyBaseline(Objective):
    """Encoder -> linear classifier, trained with cross-entropy alone."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        self.normalize = pixel_normalization(self.input_shape[0])
        self.encoder = build_encoder(self.config.encoder, self.input_shape, stem=self.config.stem,
                                     feature_dim=self.config.feature_dim, hidden_dim=self.config.hidden_dim)
        self.classifier = nn.Linear(self.encoder.feature_dim, self.num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The representation ``h`` (B, K) of pixels in [0, 1]; non-negative."""
        return self.encoder(self.normalize(x))

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        ce = F.cross_entropy(self.classifier(self.features(x)), y)
        return {"loss": ce, "ce": ce.detach()}

    def logits(self, x: Tensor) -> Tensor:
        """Class logits of pixels in [0, 1], differentiable in ``x``; call in eval mode (BatchNorm)."""
        return self.classifier(self.features(x))

    def representation(self, x: Tensor) -> Tensor:
        """``h``, (B, K): what the classifier reads; the information plane adds zero-entropy noise to it."""
        return self.features(x)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        logits = self.logits(x)
        return {"acc": (logits.argmax(dim=-1) == y).float().mean(), "ce": F.cross_entropy(logits, y)}
