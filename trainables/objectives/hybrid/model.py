"""The hybrid mutual-information bound of Sinha, Song and Ermon: an autoencoder plus MoCo-v2.

"Hybrid mutual information lower-bound estimators for representation learning"
(../shared/papers/sinha-hybrid-mi-lower-bound-estimators.txt). An encoder f maps x to a latent
z = f(x) (CIFAR-10: 16x16x6) split along its channels into two halves z = [y, w]. The bound

    I(g, q) = alpha * E[log q(x | z) - log p(x)] + (1 - alpha) * I_CPC(g on y)

is maximised with a Gaussian decoder q (the squared error) on the whole latent and MoCo-v2 on the
first half y only. The loss minimised here is

    loss = alpha * SSE(x, decoder(f(x))) + (1 - alpha) * InfoNCE_MoCo(y-views; temperature),

with SSE the squared error summed over an image's pixels (in [0, 1]; -log q(x|z) up to constants
for a Gaussian of variance 1/2) and averaged over the batch, and
:func:`trainables.estimators.moco_info_nce`: the query is ``head(y)`` of one augmented view, the
key ``key_head(key_y)`` of another view under the momentum copy of encoder and head, the
negatives a queue of ``queue_size`` earlier keys (:class:`trainables.autoencoder.MoCoQueue`).
The autoencoder reconstructs the un-augmented image, so the whole latent keeps what the
augmentations discard (colour, position). alpha = 1 is a plain autoencoder.

MoCo's bookkeeping happens inside ``forward`` in training mode, since the harness only steps the
optimiser: first the key encoder and head move towards the query ones,
``k <- momentum * k + (1 - momentum) * q`` under ``no_grad`` (as MoCo's official code does at the
start of its forward, i.e. after the previous optimiser step), then the keys are computed, then
the loss, then the keys are enqueued. The key encoder's parameters have ``requires_grad=False``:
they stay in the harness's Adam list but get no gradient, so Adam and its weight decay skip them.
Key encoder, key head and queue are in ``state_dict``, so a checkpoint restores them exactly.
Evaluation mode neither updates nor enqueues. Views come from torch's global RNG (training) or a
generator seeded by ``seed`` (evaluation), as in ``simclr_dib``.

Terms of ``forward`` (all 0-d): ``loss``; ``sse`` (per image) and ``mse`` (per pixel and channel)
of the reconstruction; ``info_nce`` in nats; ``contrastive_mi_bits`` = (log(K + 1) - info_nce) in
bits, the InfoNCE lower bound on I(view; y) with K negatives. ``evaluate`` gives ``sse``, ``mse``
and ``info_nce`` on the test split (against the current queue). ``test/acc`` / ``train/acc``: a
linear probe on the whole latent (:mod:`trainables.objectives.linear_evaluation`);
``final_evaluations`` adds probes on each half (``probe/first_half_*``, ``probe/second_half_*``)
and the interpolations of the paper's Figures 2-4 as rows (``interpolation``, see
:meth:`HybridBound.interpolation_rows`). Labels are used by the probes only.

FID (the paper's Table 1) is of DDIM samples drawn from the latent, a generative model this
project does not train, so the config refuses a non-empty ``fid_weights`` and the report says FID
was skipped. It also refuses ``ema_decay`` > 0: an EMA copy would average the queue and the key
encoder, which already is a momentum average.

Config: :class:`trainables.objectives.hybrid.config.HybridConfig`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from trainables.augment import ViewAugmentation
from trainables.autoencoder import ConvAutoencoder, MLPHead, MoCoQueue, momentum_update
from trainables.config import TrialConfig
from trainables.estimators import moco_info_nce, nats_to_bits
from trainables.models import pixel_normalization
from trainables.objectives.base import Objective
from trainables.objectives.linear_evaluation import NOT_MEASURED, probe, probe_due

INTERPOLATIONS = ("whole", "first_half", "second_half")


class HybridBound(Objective):
    """Conv autoencoder whose first latent half is also trained by MoCo-v2."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        config = self.config
        self.seed, self.epochs = trial.training.seed, trial.training.epochs
        self.eval_batch_size = trial.training.eval_batch_size
        self.alpha = config.alpha
        self.register_weight("sse_weight", self.alpha)
        self.register_weight("info_nce_weight", 1 - self.alpha)
        self.temperature = config.temperature
        self.momentum = config.momentum
        self.probe_every = config.probe_every
        self.interpolation_pairs = config.interpolation_pairs
        self.interpolation_steps = config.interpolation_steps
        latent_channels = config.latent_channels
        self.augment = ViewAugmentation(crop_scale_min=config.crop_scale_min, jitter_strength=config.jitter_strength)
        channels, height, width = self.input_shape
        self.half = latent_channels // 2
        half_features = self.half * (height // 2) * (width // 2)
        projection_dim = config.projection_dim

        self.normalize = pixel_normalization(channels)
        self.autoencoder = ConvAutoencoder(channels, config.hidden_channels, latent_channels)
        self.head = MLPHead(half_features, config.head_hidden_dim, projection_dim)
        # the momentum (key) copies start equal to the query networks, as in MoCo
        self.key_encoder = copy.deepcopy(self.autoencoder.encoder).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.queue = MoCoQueue(config.queue_size, projection_dim)

    def latent(self, x: Tensor) -> Tensor:
        """z = f(x), ``(B, latent_channels, H/2, W/2)``, of pixels in [0, 1]."""
        return self.autoencoder.encode(self.normalize(x))

    def _keys(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return nn.functional.normalize(self.key_head(self.key_encoder(self.normalize(x))[:, : self.half]), dim=1)

    def _terms(self, x: Tensor, generator: torch.Generator | None) -> dict[str, Tensor]:
        b = len(x)
        query_view, key_view = self.augment(x, generator), self.augment(x, generator)
        z, z_query = self.latent(torch.cat([x, query_view])).split(b)  # one pass: no BatchNorm to mix them
        sse = (self.autoencoder.decode(z) - x).square().flatten(1).sum(dim=1).mean()
        query = self.head(z_query[:, : self.half])
        keys = self._keys(key_view)
        info_nce = moco_info_nce(query, keys, self.queue.keys, self.temperature)
        return {"sse": sse, "info_nce": info_nce, "keys": keys}

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        del y  # self-supervised: the labels are never used in training
        if self.training:
            momentum_update(self.autoencoder.encoder, self.key_encoder, self.momentum)
            momentum_update(self.head, self.key_head, self.momentum)
        terms = self._terms(x, None)
        loss = self.sse_weight * terms["sse"] + self.info_nce_weight * terms["info_nce"]
        if self.training:
            self.queue.enqueue(terms["keys"])
        info_nce = terms["info_nce"].detach()
        return {
            "loss": loss,
            "sse": terms["sse"].detach(),
            "mse": terms["sse"].detach() / x[0].numel(),
            "info_nce": info_nce,
            "contrastive_mi_bits": nats_to_bits(math.log(self.queue.size + 1) - info_nce),
        }

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        terms = self._terms(x, generator)
        return {"sse": terms["sse"], "mse": terms["sse"] / x[0].numel(), "info_nce": terms["info_nce"]}

    def epoch_metrics(self, data: Any, epoch: int) -> dict[str, float]:
        """The linear probe on the whole latent (``train/acc``, ``test/acc``) every ``probe_every`` epochs, else NaN."""
        if not probe_due(epoch, self.probe_every, self.epochs):
            return dict(NOT_MEASURED)
        accuracy = probe(self.latent, data, self.eval_batch_size)
        return {"train/acc": accuracy["train_acc"], "test/acc": accuracy["test_acc"]}

    def final_evaluations(self, data: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Linear probes on each latent half, and the interpolation rows."""
        batch = self.eval_batch_size
        metrics = {}
        for part, channels in (("first_half", slice(0, self.half)), ("second_half", slice(self.half, None))):
            accuracy = probe(lambda x, c=channels: self.latent(x)[:, c], data, batch)
            metrics.update({f"probe/{part}_train_acc": accuracy["train_acc"], f"probe/{part}_test_acc": accuracy["test_acc"]})
        return metrics, self.interpolation_rows(data.test_x, data.test_y)

    @torch.no_grad()
    def interpolations(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Decoded interpolations between pairs of test images (the paper's Figures 2-4).

        Pair p runs from the first test image of class 2p to the first of class 2p + 1 (classes
        modulo those present). With z_a = [y_a, w_a], z_b = [y_b, w_b] and t = 0 ... 1 in
        ``interpolation_steps`` steps: ``whole`` decodes (1 - t) z_a + t z_b, ``first_half``
        decodes [(1 - t) y_a + t y_b, w_a] (only the contrastive half moves), ``second_half``
        decodes [y_a, (1 - t) w_a + t w_b]. Returns ``{mode: (pairs, steps, C, H, W)}`` in [0, 1].
        """
        classes = torch.unique(y)
        first = torch.stack([torch.nonzero(y == c)[0, 0] for c in classes])
        pairs = self.interpolation_pairs
        start = first[torch.arange(0, 2 * pairs, 2) % len(classes)]
        end = first[torch.arange(1, 2 * pairs, 2) % len(classes)]
        z_a, z_b = self.latent(x[start]), self.latent(x[end])  # (P, L, h, w)
        t = torch.linspace(0, 1, self.interpolation_steps, device=x.device).view(1, -1, 1, 1, 1)
        mixed = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (P, S, L, h, w)
        fixed = z_a[:, None].expand_as(mixed)
        modes = {
            "whole": mixed,
            "first_half": torch.cat([mixed[:, :, : self.half], fixed[:, :, self.half :]], dim=2),
            "second_half": torch.cat([fixed[:, :, : self.half], mixed[:, :, self.half :]], dim=2),
        }
        return {mode: self.autoencoder.decode(z.flatten(0, 1)).clamp(0, 1).unflatten(0, (pairs, -1))
                for mode, z in modes.items()}

    def interpolation_rows(self, x: Tensor, y: Tensor) -> list[dict[str, Any]]:
        """Rows ``{"evaluation": "interpolation", "metric": mode, "index": i, "value": pixel}``.

        ``index`` is the flat position in the ``(pairs, steps, C, H, W)`` array of
        :meth:`interpolations` (pixels rounded to 1/10,000), and five rows with metric
        ``grid_shape`` give that shape, so the report can rebuild the images from the rows alone.
        Digits, 4 pairs x 8 steps: 3 x 2,048 pixel rows per trial.
        """
        if self.interpolation_pairs == 0:
            return []
        images = self.interpolations(x, y)
        shape = tuple(images["whole"].shape)
        rows = [_row("grid_shape", i, float(size)) for i, size in enumerate(shape)]
        for mode in INTERPOLATIONS:
            values = images[mode].flatten().cpu().double().numpy().round(4).tolist()
            rows += [_row(mode, i, value) for i, value in enumerate(values)]
        return rows


def _row(metric: str, index: int, value: float) -> dict[str, Any]:
    return {"evaluation": "interpolation", "metric": metric, "norm": "", "epsilon": None, "steps": None,
            "index": index, "value": value}
