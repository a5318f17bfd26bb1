"""``toy_linear``: a linear softmax classifier whose logits pass through a unit-variance Gaussian channel.

The logits f(x) = W x + b of the flattened image are the mean of Z = f(x) + eps, eps ~ N(0, I), and the classifier
is softmax(Z). The loss is the VIB bound (Alemi et al. 2017, eq. 17) with the encoder's variance fixed at 1:

    loss = CE(softmax(f(x) + eps), y) + beta * KL(N(f(x), I) || N(0, I)),   KL = ||f(x)||^2 / 2 nats,

so the rate is an L2 penalty on the logits and an upper bound on I(X; Z). Why fixed variance: the smallest model
whose rate is a real information bound, so the generic reports (accuracy and rate against beta) mean something.

Terms of ``forward`` (batch means): ``loss``; ``ce`` in nats; ``rate_bits``, the KL in bits.
Metrics of ``evaluate``: ``acc`` of argmax f(x) (the channel's mean); ``ce`` of softmax(f(x)); ``rate_bits``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.objectives.base import Objective


class ToyLinear(Objective):
    """W x + b on the flattened input, (B, C, H, W) -> (B, num_classes) logits."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        self.register_weight("rate_weight", self.config.beta)
        self.linear = nn.Linear(math.prod(self.input_shape), self.num_classes)

    def _rate_nats(self, mean: Tensor) -> Tensor:
        return 0.5 * mean.pow(2).sum(dim=-1).mean()

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mean = self.linear(x.flatten(1))
        ce = F.cross_entropy(mean + torch.randn_like(mean), y)
        rate = self._rate_nats(mean)
        return {"loss": ce + self.rate_weight * rate, "ce": ce.detach(), "rate_bits": rate.detach() / math.log(2)}

    def logits(self, x: Tensor) -> Tensor:
        """The channel's mean f(x): what an attack differentiates."""
        return self.linear(x.flatten(1))

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mean = self.linear(x.flatten(1))
        return {"acc": (mean.argmax(dim=-1) == y).float().mean(), "ce": F.cross_entropy(mean, y),
                "rate_bits": self._rate_nats(mean) / math.log(2)}
