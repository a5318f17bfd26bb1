"""Deterministic information bottleneck with a learned entropy model (Zhang et al.): the ``dib`` model.

"Entropy-constrained compressive representation learning"
(../shared/papers/zhang-entropy-constrained-compressive-representation-learning.txt). A
deterministic encoder f maps pixels x in [0, 1] (normalised inside the model,
:func:`trainables.models.pixel_normalization`) to ``h >= 0``, ``(B, C)`` (the pooled post-ReLU
feature); ``h_hat = round(h)`` with a straight-through gradient is the representation; a linear
classifier g reads ``h_hat``. Since Z = f(X) is deterministic, I(Z; X) = H(Z), and the IB loss
becomes the paper's eq. (4)

    L_sup = H(Y | g(f(X))) + beta * H(f(X)),

with H(f(X)) estimated by a CompressAI entropy model trained jointly
(:mod:`trainables.entropy_models`: ``factorized`` or the mean-scale ``hyperprior``). Here

    loss = CE(g(h_hat), y) + beta * bits_per_dim            (CE in nats)

with bits per dimension as defined once in :mod:`trainables.entropy_models`. For the first
``warmup_epochs`` epochs the loss is CE alone (the reference code: 5 epochs); beta = 0 is the
cross-entropy baseline.

Decisions:
- The entropy model prices ``h_hat``, as the reference code's supervised model (``c_resnet``)
  does: priced on the continuous ``h``, the encoder could pass information through ``h_hat``
  that the rate never sees.
- beta multiplies bits per *dimension*, not per example, because the paper's beta grid
  {0.5, 1, 2, 4, 8, 32} is on that scale (the reference code's "rate").
- The value of ``loss`` is exactly the above, but the entropy model's own parameters always
  descend d bits_per_dim at weight 1 while the encoder gets beta * d bits_per_dim / dh: Adam is
  invariant to a constant scale of a parameter's gradient, so for beta > 0 this trains like the
  paper's loss (up to Adam's eps and weight decay), and for beta = 0 and during warm-up it keeps
  the density fitted to the codes, so the reported rate estimates H(h_hat) rather than pricing it
  under an untrained density.
- The ``quantiles`` of each ``EntropyBottleneck`` get no gradient from ``loss``; :meth:`aux_loss`
  trains them with the harness's separate optimiser (CompressAI's recipe).
- ``logits(x)`` runs through the straight-through rounding, so that PGD differentiates it (BPDA),
  as the reference code's attack does.

Terms of ``forward`` (train mode: the entropy model adds uniform noise; all 0-d):
    ``loss``          the quantity backpropagated;
    ``ce``            cross-entropy of g(h_hat) in nats;
    ``rate_bits``     total bits per example of the code of h_hat;
    ``bits_per_dim``  the paper's bits per dimension.
Metrics of ``evaluate`` (eval mode: the entropy model rounds): ``acc``, ``ce``, ``rate_bits``,
``bits_per_dim``, and ``active_dims``, the mean count of non-zero entries of h_hat per example.
``final_evaluations()`` gives the singular values of g's weight (the paper's Fig. 5, right).

Config: :class:`trainables.objectives.dib.config.DibConfig`. Reference setup (../shared/NOTES.md):
ResNet-18 with the ImageNet stem, hyperprior, Adam lr 5e-3, weight decay 1e-4, cosine schedule,
batch 128, 100 epochs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.entropy_models import build_entropy_model
from trainables.models import build_encoder, pixel_normalization
from trainables.objectives.base import Objective


def ste_round(h: Tensor) -> Tensor:
    """``round(h)`` forward, identity backward (the straight-through estimator)."""
    return h + (torch.round(h) - h).detach()


def scale_gradient(h: Tensor, weight: float | Tensor) -> Tensor:
    """``h`` forward; the gradient that reaches ``h`` is multiplied by ``weight``.

    A float 0 cuts the gradient off. A 0-d tensor (the objectives' per-epoch ``rate_weight``) is
    never branched on, so ``torch.compile`` keeps one graph whatever its value; it multiplies in
    fp32 as a Python float would (a bf16 ``h`` times a device tensor would round it to bf16 first),
    and a 0 adds exact zeros to the gradient ``h`` gets by other paths.
    """
    if isinstance(weight, Tensor):
        return h.detach() + (weight * (h - h.detach()).float()).to(h.dtype)
    if weight == 0:
        return h.detach()
    return h.detach() + weight * (h - h.detach())


class DeterministicInformationBottleneck(Objective):
    """Encoder -> straight-through rounding -> linear classifier, priced by an entropy model."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        self.beta = self.config.beta
        self.warmup_epochs = self.config.warmup_epochs

        in_channels = self.input_shape[0]
        self.normalize = pixel_normalization(in_channels)
        self.encoder = build_encoder(self.config.encoder, self.input_shape, stem=self.config.stem,
                                     feature_dim=self.config.feature_dim, hidden_dim=self.config.hidden_dim)
        channels = self.encoder.feature_dim
        self.entropy_model = build_entropy_model(self.config.entropy_model, channels)
        self.classifier = nn.Linear(channels, self.num_classes)
        # beta after warm-up, 0 during it: a 0-d buffer, not a Python number, so that torch.compile keeps one graph
        # for every epoch. Not in the state dict: start_epoch sets it before every epoch.
        self.register_buffer("rate_weight", torch.zeros(()), persistent=False)
        self.start_epoch(1)  # the first epoch until the harness says otherwise

    @torch.no_grad()
    def start_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.rate_weight.fill_(self.beta if self.epoch > self.warmup_epochs else 0.0)

    def features(self, x: Tensor) -> Tensor:
        """The continuous feature ``h`` (B, C) of pixels in [0, 1]."""
        return self.encoder(self.normalize(x))

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        h_hat = ste_round(self.features(x))
        ce = F.cross_entropy(self.classifier(h_hat), y)
        weight = self.rate_weight
        rate = self.entropy_model(scale_gradient(h_hat, weight))
        bits_per_dim = rate.bits_per_dim
        # value: ce + weight * bits_per_dim; gradient: the entropy model descends bits_per_dim at
        # weight 1, the encoder at `weight` through scale_gradient (module docstring)
        loss = ce + weight * bits_per_dim.detach() + (bits_per_dim - bits_per_dim.detach())
        return {"loss": loss, "ce": ce.detach(), "rate_bits": rate.bits.detach(), "bits_per_dim": bits_per_dim.detach()}

    def logits(self, x: Tensor) -> Tensor:
        """Class logits through the straight-through rounding; call in eval mode (BatchNorm)."""
        return self.classifier(ste_round(self.features(x)))

    def representation(self, x: Tensor) -> Tensor:
        """The rounded ``h_hat`` the classifier reads, (B, C).

        ``h_hat`` is discrete; with the zero-entropy noise the information plane adds, its k-NN
        h(Z) approaches the discrete entropy H(h_hat) (the quantity the rate prices) as the
        integer lattice's spacing, 1, grows against the noise's standard deviation, 0.24.
        """
        return torch.round(self.features(x))

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        h = self.features(x)
        h_hat = torch.round(h)
        logits = self.classifier(h_hat)
        rate = self.entropy_model(h_hat)
        return {
            "acc": (logits.argmax(dim=-1) == y).float().mean(),
            "ce": F.cross_entropy(logits, y),
            "rate_bits": rate.bits,
            "bits_per_dim": rate.bits_per_dim,
            "active_dims": (h_hat != 0).float().sum(dim=1).mean(),
        }

    def aux_parameters(self) -> list[nn.Parameter]:
        """The entropy bottlenecks' ``quantiles``, and nothing else (CompressAI's recipe)."""
        return [p for name, p in self.named_parameters() if name.endswith("quantiles")]

    def aux_loss(self) -> Tensor:
        return self.entropy_model.aux_loss()

    def final_evaluations(self, data: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Singular values of the classifier's weight, largest first (the paper's Fig. 5, right)."""
        singular_values = torch.linalg.svdvals(self.classifier.weight.detach().float()).tolist()
        return {}, [
            {"evaluation": "spectrum", "metric": "singular_value", "norm": "", "epsilon": None, "steps": None,
             "index": i, "value": value}
            for i, value in enumerate(singular_values)
        ]

