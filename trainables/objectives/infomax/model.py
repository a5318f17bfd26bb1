"""InfoMax between two views with invertible encoders (Tschannen et al., ICLR 2020).

"On mutual information maximization for representation learning"
(../shared/papers/tschannen-mi-maximization-representation-learning-slides.txt). Each image gives
two views, its top and bottom halves (MNIST: rows 0-13 / 14-27, 392 pixels each; the 8x8 digits:
rows 0-3 / 4-7, 32 pixels each), encoded by g1 and g2; a critic f scores every pair of a batch and
the loss is the negative of a lower bound on the MI between the encoded views:

    loss = - I_EST( g1(x_top); g2(x_bottom) ),   I_EST = InfoNCE or NWJ of the (B, B) scores.

With the invertible RealNVP encoder the true I(g1(X1); g2(X2)) = I(X1; X2) never changes, yet the
estimate, the downstream accuracy and the Jacobian's condition number all move: the paper's point
that the bounds, not the MI, shape the representation. Estimators: :mod:`trainables.estimators`;
encoders and critics: :mod:`trainables.flows`; the condition number:
:mod:`trainables.evaluation.conditioning`; the linear probe: :mod:`trainables.evaluation.probes`.

Adversarial mode (``adversarial=true``, the paper's section 3.1): a linear classifier c on g1's
representation learns the labels (cross-entropy on the *detached* representation, so it trains c
only) while g1 is pushed, through a detached copy of c, towards the cross-entropy against uniform
labels (c cannot tell classes apart); the InfoMax term stays in the loss, so the MI estimate stays
high. ``loss = -I_EST + ce(c(sg(z1)), y) + adversarial_weight * ce_uniform(sg(c)(z1))``. One
optimiser serves both players since each term reaches only its own player's parameters.

Terms of ``forward`` (batch means; the bound uses the training batch, B = batch_size, the last
batch of an epoch may be smaller): ``loss``, ``mi_nats``, ``mi_bits``, and in adversarial mode
``classifier_ce``, ``uniform_ce`` and ``classifier_acc``.

Metrics of ``evaluate``: ``mi_nats`` and ``mi_bits`` on the test split, each estimate made on
exactly ``mi_batch_size`` consecutive test pairs (InfoNCE depends on B and is capped at log B):
the harness's evaluation batch is cut into chunks of that size, the last chunk aligned to the
batch's end (it overlaps the one before), and the chunk estimates are averaged. Adversarial mode
adds ``classifier_acc``.

``epoch_metrics`` after every epoch (the harness reports once per epoch, so the paper's "every
``condition_every`` steps" is counted in epochs):
    ``train/steps``                 optimiser steps so far, epoch * steps per epoch (the report's x axis);
    ``probe/train_acc``, ``probe/test_acc``   linear probe of g1's representation (MinMaxScaler +
                                    logistic regression), fitted on the first
                                    ``probe_train_subset`` training examples (0: all) every epoch,
                                    because Tune needs the sweep metric in every report;
    ``conditioning/log_condition_number_pNN``  for NN in 05, 25, 50, 75, 95: percentiles of
                                    log(sigma_max / sigma_min) of g1's Jacobian over the first
                                    ``condition_batch`` test examples (a fixed batch), after epoch 1,
                                    every ``condition_every`` epochs, and after the last epoch.

Config: :class:`trainables.objectives.infomax.config.InfomaxConfig`; docs/invertibility.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.estimators import infonce, nats_to_bits, nwj
from trainables.evaluation.conditioning import log_condition_number, log_condition_percentiles
from trainables.evaluation.probes import linear_probe
from trainables.flows import BilinearCritic, ConcatCritic, RealNVP, SeparableCritic, SkipMLP
from trainables.objectives.base import Objective
from trainables.objectives.infomax.config import (CONDITION_PERCENTILES, CRITIC_NAMES, ENCODER_NAMES, ESTIMATOR_NAMES,
                                                  InfomaxConfig, condition_metric)


def _keyed_by(names: tuple[str, ...], table: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``table``, whose keys must be the config's ``names``: the config declares the choices, this module builds them."""
    if tuple(table) != names:
        raise ImportError(f"infomax: the model's {what} {tuple(table)} differ from config.py's {names}")
    return dict(table)


ESTIMATORS = _keyed_by(ESTIMATOR_NAMES, {"infonce": infonce, "nwj": nwj}, "estimators")
ENCODERS = _keyed_by(ENCODER_NAMES, {"realnvp": RealNVP, "mlp": SkipMLP}, "encoders")
CRITICS: dict[str, Callable[[int, int, InfomaxConfig], nn.Module]] = _keyed_by(CRITIC_NAMES, {
    "bilinear": lambda top, bottom, config: BilinearCritic(top, bottom),
    "separable": lambda top, bottom, config: SeparableCritic(top, bottom, config.separable_hidden,
                                                             config.separable_embed),
    "concat": lambda top, bottom, config: ConcatCritic(top, bottom, config.concat_hidden),
}, "critics")


def halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """The two views of images ``(B, C, H, W)``: rows ``[0, H // 2)`` and ``[H // 2, H)``, flattened."""
    if x.dim() != 4 or x.shape[2] < 2:
        raise ValueError(f"infomax: views need images (B, C, H, W) with H >= 2, got shape {tuple(x.shape)}")
    middle = x.shape[2] // 2
    return x[:, :, :middle].flatten(1), x[:, :, middle:].flatten(1)


def condition_due(epoch: int, every: int, epochs: int) -> bool:
    """Whether the condition number is measured after epoch ``epoch`` (1-based) of ``epochs``."""
    return epoch == 1 or epoch % every == 0 or epoch == epochs


class InfoMax(Objective):
    """Encoders g1, g2 of the two halves, a critic, and an MI lower bound to maximise."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        config = self.config
        training = trial.training
        self.batch_size, self.batch_sampler = training.batch_size, training.batch_sampler
        self.eval_batch_size, self.epochs = training.eval_batch_size, training.epochs

        channels, height, width = self.input_shape
        top, bottom = channels * (height // 2) * width, channels * (height - height // 2) * width
        self.g1 = ENCODERS[config.encoder](top, config.encoder_depth, config.encoder_hidden, config.init_scale)
        self.g2 = ENCODERS[config.encoder](bottom, config.encoder_depth, config.encoder_hidden, config.init_scale)
        self.critic = CRITICS[config.critic](top, bottom, config)
        self.classifier = nn.Linear(top, self.num_classes) if config.adversarial else None

    def bound(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(I_EST in nats, g1's representation) of a batch of images."""
        top, bottom = halves(x)
        z1 = self.g1(top)
        return ESTIMATORS[self.config.estimator](self.critic(z1, self.g2(bottom))), z1

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mi, z1 = self.bound(x)
        terms = {"mi_nats": mi.detach(), "mi_bits": nats_to_bits(mi.detach())}
        loss = -mi
        if self.classifier is not None:
            logits = self.classifier(z1.detach())  # trains the classifier only
            classifier_ce = F.cross_entropy(logits, y)
            # the encoder's move, through a frozen copy of the classifier: CE against uniform labels
            frozen = F.linear(z1, self.classifier.weight.detach(), self.classifier.bias.detach())
            uniform_ce = -F.log_softmax(frozen, dim=1).mean()
            loss = loss + classifier_ce + self.config.adversarial_weight * uniform_ce
            terms.update(classifier_ce=classifier_ce.detach(), uniform_ce=uniform_ce.detach(),
                         classifier_acc=(logits.argmax(dim=1) == y).float().mean())
        return {"loss": loss, **terms}

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        b, n = self.config.mi_batch_size, len(x)
        if n < b:
            raise ValueError(f"infomax: an evaluation batch of {n} test examples is smaller than mi_batch_size {b}; "
                             "choose test_subset and eval_batch_size so that no batch is shorter")
        starts = sorted(set(range(0, n - b + 1, b)) | {n - b})
        estimates = torch.stack([self.bound(x[s : s + b])[0] for s in starts])
        metrics = {"mi_nats": estimates.mean(), "mi_bits": nats_to_bits(estimates.mean())}
        if self.classifier is not None:
            logits = self.classifier(self.g1(halves(x)[0]))
            metrics["classifier_acc"] = (logits.argmax(dim=1) == y).float().mean()
        return metrics

    @torch.no_grad()
    def representation(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """g1 of the top halves of ``x``, ``(N, D1)``, in batches."""
        return torch.cat([self.g1(halves(x[i : i + batch_size])[0]) for i in range(0, len(x), batch_size)])

    def epoch_metrics(self, data: Any, epoch: int) -> dict[str, float]:
        n_train = len(data.train_y)
        if self.batch_sampler == "class_balanced":
            steps_per_epoch = max(1, n_train // self.batch_size)
        else:
            steps_per_epoch = math.ceil(n_train / self.batch_size)
        metrics = {"train/steps": float(epoch * steps_per_epoch)}

        subset = self.config.probe_train_subset or n_train
        batch = self.eval_batch_size
        probe = linear_probe(self.representation(data.train_x[:subset], batch), data.train_y[:subset],
                             self.representation(data.test_x, batch), data.test_y)
        metrics.update({f"probe/{name}": value for name, value in probe.items()})

        if condition_due(epoch, self.config.condition_every, self.epochs):
            x1 = halves(data.test_x[: self.config.condition_batch])[0]
            percentiles = log_condition_percentiles(log_condition_number(self.g1, x1), CONDITION_PERCENTILES)
            metrics.update({condition_metric(p): v for p, v in percentiles.items()})
        return metrics
