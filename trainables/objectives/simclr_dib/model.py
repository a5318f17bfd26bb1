"""SimCLR with an entropy penalty (the contrastive part of Zhang et al.): the ``simclr_dib`` model.

"Entropy-constrained compressive representation learning", section II.D and Table I
(../shared/papers/zhang-entropy-constrained-compressive-representation-learning.txt). The
deterministic-IB objective with another view of the same image as the target:

    phi* = argmin_phi  -I(X1; X2) + beta * H(f(X1)) + beta * H(f(X2)),

with -I(X1; X2) bounded by the NT-Xent loss of SimCLR (:func:`trainables.estimators.nt_xent`) and
each entropy priced, as in ``dib``, by a CompressAI entropy model on the rounded representation
``h_hat = round(f(x))`` (straight-through). Per batch of B images, two views are drawn on the
device (:mod:`trainables.augment`: random resized crop, flip, colour jitter, grayscale), the
encoder maps both to ``h``, and

    loss = NT-Xent(g(h_hat_1), g(h_hat_2); temperature) + beta * (bits_per_dim_1 + bits_per_dim_2)

where g is the projection head (``Linear -> ReLU -> Linear`` to ``projection_dim`` = 128, as in
the paper) and bits per dimension is ``dib``'s (:mod:`trainables.entropy_models`). The entropy
model prices both views as one batch of 2B, whose bits per dimension is the mean of the two
views', so the rate term is ``2 * beta * bits_per_dim``. beta = 0 is plain SimCLR. As in ``dib``
the entropy model always descends its own bits per dimension at weight 1 (so the reported rate is
a fitted estimate also at beta = 0 and during ``warmup_epochs``), while the encoder gets
``2 * beta`` times its gradient; its ``quantiles`` are trained by :meth:`aux_loss`. The projection
head reads ``h_hat``, so the information the loss uses is the information the rate prices.

Labels are never used in training. ``test/acc`` and ``train/acc`` are the linear evaluation
(:mod:`trainables.objectives.linear_evaluation`) on the continuous ``h``, as the paper's reference
code evaluates; ``final_evaluations`` adds the same probe on ``h_hat`` (``probe/rounded_*``).

Terms of ``forward`` (training; all 0-d batch means):
    ``loss``          the quantity backpropagated;
    ``nt_xent``       the NT-Xent loss in nats;
    ``rate_bits``     bits per example of one view's code of h_hat (train mode: noisy rounding);
    ``bits_per_dim``  the paper's bits per dimension, averaged over the two views.
Metrics of ``evaluate`` (eval mode, test split): ``rate_bits``, ``bits_per_dim`` and
``active_dims`` (non-zero entries of h_hat) of the un-augmented images; ``nt_xent`` and
``contrastive_acc`` (the fraction of the 2B views whose most similar other view is their pair) on
two views drawn from a generator seeded by ``seed``, the same in every epoch.

Randomness: training views come from torch's global RNG, which the harness seeds and checkpoints;
evaluation views from a generator of their own, so that evaluating leaves training's draws alone.
``small_conv`` gets He initialisation here (:func:`_he_initialization`): under PyTorch's default
init every image's ``round(h)`` is 0, where NT-Xent has zero gradient (docs/contrastive.md).

Config: :class:`trainables.objectives.simclr_dib.config.SimclrDibConfig`. Reference setup (paper,
section III): temperature 0.07, batch 256, Adam 3e-4 for 200 epochs then 3e-5 for 200.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from trainables.augment import ViewAugmentation
from trainables.autoencoder import MLPHead
from trainables.config import TrialConfig
from trainables.entropy_models import build_entropy_model
from trainables.estimators import nt_xent, view_pairs
from trainables.models import build_encoder, pixel_normalization
from trainables.objectives.base import Objective
from trainables.objectives.dib.model import scale_gradient, ste_round
from trainables.objectives.linear_evaluation import NOT_MEASURED, probe, probe_due


class SimCLRDeterministicIB(Objective):
    """Encoder -> rounding -> projection head, NT-Xent between two views plus beta times their rate."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        config = self.config
        self.beta = config.beta
        self.temperature = config.temperature
        self.warmup_epochs = config.warmup_epochs
        self.probe_every = config.probe_every
        self.seed, self.epochs = trial.training.seed, trial.training.epochs
        self.eval_batch_size = trial.training.eval_batch_size
        self.augment = ViewAugmentation(crop_scale_min=config.crop_scale_min, jitter_strength=config.jitter_strength)

        in_channels = self.input_shape[0]
        self.normalize = pixel_normalization(in_channels)
        self.encoder = build_encoder(config.encoder, self.input_shape, stem=config.stem, feature_dim=config.feature_dim)
        if config.encoder == "small_conv":
            _he_initialization(self.encoder)
        channels = self.encoder.feature_dim
        self.entropy_model = build_entropy_model(config.entropy_model, channels)
        self.projection = MLPHead(channels, channels, config.projection_dim)
        # 2 beta (both views) after warm-up, 0 during it: a 0-d buffer, as in dib, so that torch.compile keeps one
        # graph for every epoch
        self.register_buffer("rate_weight", torch.zeros(()), persistent=False)
        self.start_epoch(1)

    @torch.no_grad()
    def start_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.rate_weight.fill_(2 * self.beta if self.epoch > self.warmup_epochs else 0.0)

    def features(self, x: Tensor) -> Tensor:
        """The continuous representation ``h`` (B, C) of pixels in [0, 1]."""
        return self.encoder(self.normalize(x))

    def _views(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """The two views stacked: ``(2B, C, H, W)``, the first B the first view."""
        return torch.cat([self.augment(x, generator), self.augment(x, generator)])

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        del y  # self-supervised: the labels are never used
        h_hat = ste_round(self.features(self._views(x, None)))
        z1, z2 = self.projection(h_hat).chunk(2)
        contrastive = nt_xent(z1, z2, self.temperature)
        weight = self.rate_weight
        rate = self.entropy_model(scale_gradient(h_hat, weight))
        bits_per_dim = rate.bits_per_dim
        # value: nt_xent + 2 beta * bits_per_dim; gradient: the entropy model at weight 1, the
        # encoder at 2 beta through scale_gradient (as in dib)
        loss = contrastive + weight * bits_per_dim.detach() + (bits_per_dim - bits_per_dim.detach())
        return {"loss": loss, "nt_xent": contrastive.detach(), "rate_bits": rate.bits.detach(),
                "bits_per_dim": bits_per_dim.detach()}

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        h_hat = torch.round(self.features(x))
        rate = self.entropy_model(h_hat)
        metrics = {"rate_bits": rate.bits, "bits_per_dim": rate.bits_per_dim,
                   "active_dims": (h_hat != 0).float().sum(dim=1).mean()}
        if len(x) < 2:  # a last batch of one image has no negatives: its contrastive terms are left out
            return metrics
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        z1, z2 = self.projection(torch.round(self.features(self._views(x, generator)))).chunk(2)
        return {**metrics, "nt_xent": nt_xent(z1, z2, self.temperature), "contrastive_acc": _contrastive_accuracy(z1, z2)}

    def aux_parameters(self) -> list[nn.Parameter]:
        """The entropy bottlenecks' ``quantiles`` (CompressAI's recipe)."""
        return [p for name, p in self.named_parameters() if name.endswith("quantiles")]

    def aux_loss(self) -> Tensor:
        return self.entropy_model.aux_loss()

    def epoch_metrics(self, data: Any, epoch: int) -> dict[str, float]:
        """The linear evaluation on ``h`` (``train/acc``, ``test/acc``) every ``probe_every`` epochs, else NaN."""
        if not probe_due(epoch, self.probe_every, self.epochs):
            return dict(NOT_MEASURED)
        accuracy = probe(self.features, data, self.eval_batch_size)
        return {"train/acc": accuracy["train_acc"], "test/acc": accuracy["test_acc"]}

    def final_evaluations(self, data: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """The linear evaluation on the rounded ``h_hat``; no rows."""
        accuracy = probe(lambda x: torch.round(self.features(x)), data, self.eval_batch_size)
        return {"probe/rounded_train_acc": accuracy["train_acc"], "probe/rounded_test_acc": accuracy["test_acc"]}, []


def _he_initialization(encoder: nn.Module) -> None:
    """He (fan-in, ReLU) normal weights and zero biases for the conv layers of ``small_conv``.

    Why: under PyTorch's default init every feature of ``small_conv`` on the digits starts below 0.5, so ``round(h)``
    is 0 for every image, every projection is the same vector, and NT-Xent's gradient is exactly zero (a saddle;
    docs/contrastive.md has the measurements).
    """
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(module.bias)


def _contrastive_accuracy(z1: Tensor, z2: Tensor) -> Tensor:
    """Fraction of the 2N views whose nearest other view (cosine similarity) is their own pair."""
    u = nn.functional.normalize(torch.cat([z1, z2]).float(), dim=1)
    similarity = (u @ u.T).fill_diagonal_(float("-inf"))
    n = len(z1)
    return (similarity.argmax(dim=1) == view_pairs(n, u.device)).float().mean()
