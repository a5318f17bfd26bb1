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

``epoch_metrics`` after every epoch (the harness reports once per epoch, so "every
``condition_every`` steps" is counted in epochs here):
    ``train/steps``                 optimiser steps so far, epoch * steps per epoch;
    ``probe/train_acc``, ``probe/test_acc``   linear probe of g1's representation (MinMaxScaler +
                                    logistic regression), fitted on the first
                                    ``probe_train_subset`` training examples (0: all) every epoch;
    ``conditioning/log_condition_number_pNN``  for NN in 05, 25, 50, 75, 95: percentiles of
                                    log(sigma_max / sigma_min) of g1's Jacobian over the first
                                    ``condition_batch`` test examples (a fixed batch), after epoch 1,
                                    every ``condition_every`` epochs, and after the last epoch.

Config keys: ``estimator`` (infonce | nwj), ``critic`` (bilinear | separable | concat), ``encoder``
(realnvp | mlp), ``encoder_depth``, ``encoder_hidden``, ``init_scale``, ``separable_hidden``,
``separable_embed``, ``concat_hidden``, ``mi_batch_size``, ``condition_every``,
``condition_batch``, ``probe_train_subset``, ``adversarial`` (bool), ``adversarial_weight``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.estimators import infonce, nats_to_bits, nwj
from trainables.evaluation.conditioning import PERCENTILES, log_condition_number, log_condition_percentiles
from trainables.evaluation.probes import linear_probe
from trainables.flows import BilinearCritic, ConcatCritic, RealNVP, SeparableCritic, SkipMLP
from trainables.objectives import register_objective
from trainables.objectives.base import Objective, choice, integer, nonnegative_float

ESTIMATORS = {"infonce": infonce, "nwj": nwj}
CRITICS = ("bilinear", "separable", "concat")
ENCODERS = {"realnvp": RealNVP, "mlp": SkipMLP}


def halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """The two views of images ``(B, C, H, W)``: rows ``[0, H // 2)`` and ``[H // 2, H)``, flattened."""
    if x.dim() != 4 or x.shape[2] < 2:
        raise ValueError(f"infomax: views need images (B, C, H, W) with H >= 2, got shape {tuple(x.shape)}")
    middle = x.shape[2] // 2
    return x[:, :, :middle].flatten(1), x[:, :, middle:].flatten(1)


def condition_due(epoch: int, every: int, epochs: int) -> bool:
    """Whether the condition number is measured after epoch ``epoch`` (1-based) of ``epochs``."""
    return epoch == 1 or epoch % every == 0 or epoch == epochs


def _boolean(config: Mapping[str, Any], key: str) -> bool:
    value = config[key]
    if not isinstance(value, bool):
        raise ValueError(f"infomax: {key} must be true or false, got {value!r}")
    return value


@register_objective("infomax")
class InfoMax(Objective):
    """Encoders g1, g2 of the two halves, a critic, and an MI lower bound to maximise."""

    def __init__(self, config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
        super().__init__(config, input_shape, num_classes)
        self.estimator = choice(config, "estimator", "infomax", tuple(ESTIMATORS))
        critic = choice(config, "critic", "infomax", CRITICS)
        encoder = choice(config, "encoder", "infomax", tuple(ENCODERS))
        depth = integer(config, "encoder_depth", "infomax", minimum=1)
        hidden = integer(config, "encoder_hidden", "infomax", minimum=1)
        init_scale = nonnegative_float(config, "init_scale", "infomax")
        self.mi_batch_size = integer(config, "mi_batch_size", "infomax", minimum=2)
        self.condition_every = integer(config, "condition_every", "infomax", minimum=1)
        self.condition_batch = integer(config, "condition_batch", "infomax", minimum=1)
        self.probe_train_subset = integer(config, "probe_train_subset", "infomax", minimum=0)
        self.adversarial = _boolean(config, "adversarial")
        self.adversarial_weight = nonnegative_float(config, "adversarial_weight", "infomax")
        if int(config["eval_batch_size"]) < self.mi_batch_size:
            raise ValueError(f"infomax: eval_batch_size {config['eval_batch_size']!r} must be >= mi_batch_size "
                             f"{self.mi_batch_size!r} (each test estimate uses exactly mi_batch_size pairs)")

        channels, height, width = self.input_shape
        top, bottom = channels * (height // 2) * width, channels * (height - height // 2) * width
        self.g1 = ENCODERS[encoder](top, depth, hidden, init_scale)
        self.g2 = ENCODERS[encoder](bottom, depth, hidden, init_scale)
        if critic == "bilinear":
            self.critic = BilinearCritic(top, bottom)
        elif critic == "separable":
            self.critic = SeparableCritic(top, bottom, integer(config, "separable_hidden", "infomax", minimum=1),
                                          integer(config, "separable_embed", "infomax", minimum=1))
        else:
            self.critic = ConcatCritic(top, bottom, integer(config, "concat_hidden", "infomax", minimum=1))
        self.classifier = nn.Linear(top, self.num_classes) if self.adversarial else None

    def bound(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(I_EST in nats, g1's representation) of a batch of images."""
        top, bottom = halves(x)
        z1 = self.g1(top)
        return ESTIMATORS[self.estimator](self.critic(z1, self.g2(bottom))), z1

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
            loss = loss + classifier_ce + self.adversarial_weight * uniform_ce
            terms.update(classifier_ce=classifier_ce.detach(), uniform_ce=uniform_ce.detach(),
                         classifier_acc=(logits.argmax(dim=1) == y).float().mean())
        return {"loss": loss, **terms}

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        b, n = self.mi_batch_size, len(x)
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
        config = self.config
        n_train = len(data.train_y)
        if config["batch_sampler"] == "class_balanced":
            steps_per_epoch = max(1, n_train // int(config["batch_size"]))
        else:
            steps_per_epoch = math.ceil(n_train / int(config["batch_size"]))
        metrics = {"train/steps": float(epoch * steps_per_epoch)}

        subset = self.probe_train_subset or n_train
        batch = int(config["eval_batch_size"])
        probe = linear_probe(self.representation(data.train_x[:subset], batch), data.train_y[:subset],
                             self.representation(data.test_x, batch), data.test_y)
        metrics.update({f"probe/{name}": value for name, value in probe.items()})

        if condition_due(epoch, self.condition_every, int(config["epochs"])):
            x1 = halves(data.test_x[: self.condition_batch])[0]
            percentiles = log_condition_percentiles(log_condition_number(self.g1, x1), PERCENTILES)
            metrics.update({f"conditioning/log_condition_number_p{p:02d}": v for p, v in percentiles.items()})
        return metrics
