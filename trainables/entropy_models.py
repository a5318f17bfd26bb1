"""Learned entropy models that price a feature vector in bits, built from CompressAI's layers.

An entropy model takes a batch of features ``h`` of shape ``(B, C)`` (the ``dib`` objective passes
the already rounded ``h_hat``) and returns an estimate of the bits needed to code them as integers:
``R = -sum log2(likelihoods)`` over the likelihoods CompressAI's layers return (each bounded below
at 1e-9, so at most 29.9 bits a value).

- ``factorized``: ``EntropyBottleneck(C)`` on ``h`` viewed as ``(B, C, 1)``, one learned
  univariate density per dimension (Balle et al., "Variational image compression with a scale
  hyperprior", 2018, appendix 6.1). Both models use :class:`SyncFreeEntropyBottleneck`, the
  same layer without its per-call host syncs on CUDA.
- ``hyperprior``: the mean-scale hyperprior with fully connected layers, as the reference code of
  Zhang et al. builds it: ``z = Linear(C, 2C)(h)`` is coded by ``EntropyBottleneck(2C)``; two
  ``Linear(2C, C)`` heads read the coded ``z_hat`` and give the means and scales of a
  ``GaussianConditional`` that codes ``h`` (scales are bounded below at 0.11 by CompressAI).

Train and eval: in ``train()`` both layers add U(-1/2, 1/2) noise to their input, the
differentiable stand-in for rounding; in ``eval()`` the ``EntropyBottleneck`` rounds around its
learned medians and the ``GaussianConditional`` around the predicted means, so an eval-mode rate is
the cost of a discrete code (for integer inputs that rounding only shifts them, one to one).

Bits per dimension -- defined here, once, and used by every objective that reports it:

    factorized:  bits_per_dim = R(h) / (B * C)
    hyperprior:  bits_per_dim = R(h | z) / (B * C) + R(z) / (B * 2C)

the reference code's definition (its ``FactorizedPrior`` and ``HyperPrior`` return exactly these),
on which the paper's beta grid and its "0.13 bits per dimension" are stated. The hyperprior's is a
sum of two per-dimension averages, not total bits over total dimensions. The total rate per
example, comparable with the VIB's per-example rate, is ``bits = (R(h | z) + R(z)) / B``.

Quantiles: each ``EntropyBottleneck`` has a parameter ``quantiles`` (its median and tail
quantiles) that the rate gives no gradient; :meth:`FeatureEntropyModel.aux_loss` is the loss that
trains it, with its own optimiser (CompressAI's recipe).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import Tensor, nn

from trainables.config import ENTROPY_MODEL_NAMES
from trainables.fast_path import without_autocast

ENTROPY_MODELS = ENTROPY_MODEL_NAMES  # the names build_entropy_model accepts, declared once in trainables.config


class RateEstimate(NamedTuple):
    """The rate of one batch, as 0-d float32 tensors (differentiable in train mode)."""

    bits: Tensor
    """Total bits per example: R / B."""
    bits_per_dim: Tensor
    """The paper's bits per dimension (module docstring)."""


class SyncFreeEntropyBottleneck(EntropyBottleneck):
    """CompressAI's ``EntropyBottleneck`` without its host syncs on CUDA; same parameters and outputs.

    CompressAI 1.2.8's ``forward`` builds its axis permutation as a CUDA tensor and unpacks it
    into ``permute(*perm)``, which reads every element back to the host: ``2 * x.ndim`` blocking
    syncs per call, each of which stalls the CPU until the GPU has drained its queue (fixed
    upstream in PR 344, not released). This subclass builds the permutation from Python ints;
    everything else is the parent's code path (noise or rounding around the medians, the
    cumulative-logit likelihood and its lower bound). The state dict is the parent's, so
    checkpoints load into either.
    """

    def forward(self, x: Tensor, training: bool | None = None) -> tuple[Tensor, Tensor]:
        if training is None:
            training = self.training
        perm = (1, 0, *range(2, x.ndim))  # B x C x ... -> C x B x ...; its own inverse
        x = x.permute(*perm).contiguous()
        shape = x.size()
        values = x.reshape(x.size(0), 1, -1)
        outputs = self.quantize(values, "noise" if training else "dequantize", self._get_medians())
        likelihood, _, _ = self._likelihood(outputs)
        if self.use_likelihood_bound:
            likelihood = self.likelihood_lower_bound(likelihood)
        outputs = outputs.reshape(shape).permute(*perm).contiguous()
        likelihood = likelihood.reshape(shape).permute(*perm).contiguous()
        return outputs, likelihood


def total_bits(likelihoods: Tensor) -> Tensor:
    """``-sum log2(likelihoods)``: the bits of an ideal entropy code under those likelihoods."""
    return -torch.log2(likelihoods).sum()


class FeatureEntropyModel(nn.Module):
    """Base class: ``forward(h)`` returns a :class:`RateEstimate` of ``h`` of shape ``(B, C)``."""

    def __init__(self, channels: int):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        self.channels = channels

    def forward(self, h: Tensor) -> RateEstimate:
        if h.dim() != 2 or h.shape[1] != self.channels:
            raise ValueError(f"expected features of shape (B, {self.channels}), got {tuple(h.shape)}")
        # float32 even under bf16 autocast: likelihoods near 1e-9 and their logs need the precision
        with without_autocast(h.device):
            return self._rate(h.float())

    def _rate(self, h: Tensor) -> RateEstimate:
        raise NotImplementedError

    def aux_loss(self) -> Tensor:
        """Sum of the ``EntropyBottleneck`` losses that fit ``quantiles`` to the learned densities,
        in float32 also inside the training step's autocast."""
        bottlenecks = [m for m in self.modules() if isinstance(m, EntropyBottleneck)]
        with without_autocast(bottlenecks[0].quantiles.device):
            return sum(m.loss() for m in bottlenecks)


class FactorizedPrior(FeatureEntropyModel):
    """``EntropyBottleneck(C)``: ``bits_per_dim = R(h) / (B * C)``."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.entropy_bottleneck = SyncFreeEntropyBottleneck(channels)

    def _rate(self, h: Tensor) -> RateEstimate:
        batch = h.shape[0]
        _, likelihoods = self.entropy_bottleneck(h.unsqueeze(-1))
        bits = total_bits(likelihoods)
        return RateEstimate(bits / batch, bits / (batch * self.channels))


class MeanScaleHyperprior(FeatureEntropyModel):
    """Mean-scale hyperprior on ``(B, C)`` features with a ``2C``-d hyper-latent ``z``.

    ``bits_per_dim = R(h | z) / (B * C) + R(z) / (B * 2C)``.
    """

    def __init__(self, channels: int):
        super().__init__(channels)
        hyper_channels = 2 * channels  # the reference code's 512 -> 1024
        self.hyper_encoder = nn.Linear(channels, hyper_channels)
        self.entropy_bottleneck = SyncFreeEntropyBottleneck(hyper_channels)
        self.mean_head = nn.Linear(hyper_channels, channels)
        self.scale_head = nn.Linear(hyper_channels, channels)
        self.gaussian_conditional = GaussianConditional(None)

    def _rate(self, h: Tensor) -> RateEstimate:
        batch = h.shape[0]
        z = self.hyper_encoder(h)
        z_hat, z_likelihoods = self.entropy_bottleneck(z.unsqueeze(-1))
        z_hat = z_hat.squeeze(-1)
        _, h_likelihoods = self.gaussian_conditional(h, self.scale_head(z_hat), means=self.mean_head(z_hat))
        h_bits, z_bits = total_bits(h_likelihoods), total_bits(z_likelihoods)
        bits_per_dim = h_bits / (batch * self.channels) + z_bits / (batch * 2 * self.channels)
        return RateEstimate((h_bits + z_bits) / batch, bits_per_dim)


def build_entropy_model(name: str, channels: int) -> FeatureEntropyModel:
    """The entropy model ``name`` (one of :data:`ENTROPY_MODELS`) for ``channels``-d features."""
    if name == "factorized":
        return FactorizedPrior(channels)
    if name == "hyperprior":
        return MeanScaleHyperprior(channels)
    raise ValueError(f"entropy_model must be one of {', '.join(ENTROPY_MODELS)}, got {name!r}")
