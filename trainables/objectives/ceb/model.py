"""The Conditional Entropy Bottleneck (Fischer 2020, "The Conditional Entropy Bottleneck", Entropy 22(9):999;
Fischer and Alemi 2020, "CEB Improves Model Robustness", Entropy 22(10):1081).

CEB keeps in Z what X says about Y and nothing else: it minimises beta * I(X;Z|Y) - I(Y;Z), the residual
information I(X;Z|Y) = I(X;Z) - I(Y;Z) (for Z <- X <-> Y) priced and the predictive information rewarded. With
a forward encoder e(z|x), a backward encoder b(z|y) and a classifier c(y|z), the variational bound minimised (the
form both papers train) is

    loss = E[ -log c(y|z) ] + beta * E[ log e(z|x) - log b(z|y) ],   z = mean(x) + std(x) * eps, eps ~ N(0, I),

one reparameterised sample per example, batch means. log e - log b at that z is the single-sample estimate of
KL(e(z|x) || b(z|y)), an upper bound on I(X;Z|Y), as in the reference implementations (``CEB.loss`` in the PI-SAC code
of Lee, Fischer et al. 2020: ``i_xz_y = e_zx.log_prob(z) - b_zy.log_prob(z)``; Xiaofeng Mao's PyTorch port of the
robustness paper: ``rex = e.log_prob(z) - b.log_prob(z)``).

The three distributions:

- e(z|x) = N(mean(x), diag(std(x)^2)), std = softplus(rho - 5): for ``encoder="mlp"`` VIB's
  :class:`~trainables.models.GaussianMLPEncoder`, so that a CEB and a VIB trial differ only in the loss; for
  ``resnet18`` / ``small_conv`` the project's conv encoder and a linear Gaussian head on its features. The robustness
  paper trains a Wide ResNet 28-10 without BatchNorm; the PyTorch port fixes std = 1. Ours: a learned std
  everywhere, as VIB's, so that the two are matched on every encoder.
- b(z|y) = N(mu_y, I): one learned mean per class, unit variance, mu_y a linear layer applied to one-hot y (as the
  PyTorch port, and a ``BackwardsEncoder`` of another public port citing the robustness paper). No per-class scale:
  neither port learns one.
- c(y|z): ``classifier="consistent"`` (our default) is the consistent classifier of the CEB paper, b inverted by
  Bayes' rule with a uniform p(y), c(y|z) = b(z|y) / sum_y' b(z|y'); its logits log b(z|y) = mu_y . z - |mu_y|^2 / 2
  + const(z) are linear in z and need no parameters of their own, so c and b cannot disagree. ``"softmax"`` is a
  learned linear layer, VIB's decoder, which is what the PyTorch port trains.

beta and rho: the robustness paper sweeps rho = -ln(beta) (its code: gamma = exp(-rho) multiplies the residual
term), rho in [-1, 5], i.e. beta in [0.0067, 2.72]; rho 0 is beta 1. Our key is ``beta``, so every "vs beta" report
applies. The PyTorch port anneals rho from 100 down to its target over the first 120,000 steps; we do not anneal.

Terms of ``forward`` (training, one sample of z per example; batch means):
    ``loss``       ce + beta * residual, in nats, the quantity backpropagated;
    ``ce``         -log c(y|z) in nats;
    ``rate_bits``  the residual log e(z|x) - log b(z|y) in bits (the estimate of I(X;Z|Y) the loss prices; it can be
                   negative on a batch, its expectation cannot).

Metrics of ``evaluate`` (as vib's):
    ``acc``        accuracy of c(y|z) with one sample of z;
    ``acc_mc``     accuracy of c averaged over ``eval_samples`` samples;
    ``ce``         -log c(y|z) in nats with one sample;
    ``rate_bits``  KL(e(z|x) || b(z|y)) in bits, the closed form of the training residual's expectation over z: the
                   same quantity without sampling noise;
    ``izy_bits``   log2(num_classes) - ce / ln 2, the variational lower bound on I(Y;Z) (balanced labels).

Config: :class:`trainables.objectives.ceb.config.CebConfig`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.estimators import gaussian_kl_standard_normal, nats_to_bits
from trainables.models import GaussianMLPEncoder, build_encoder, pixel_normalization
from trainables.objectives.base import Objective


class GaussianConvEncoder(nn.Module):
    """A conv encoder's features -> a diagonal Gaussian: ``Normalize -> encoder -> Linear(features, 2K)``.

    The head splits as :class:`~trainables.models.GaussianMLPEncoder` does, std = softplus(rho - 5), so the two
    encoders start equally narrow.

    Shape: input ``(B, C, H, W)`` pixels in [0, 1]; returns ``(mean, std)``, each ``(B, latent_dim)``.
    """

    def __init__(self, name: str, input_shape: tuple[int, ...], latent_dim: int, *, stem: str, feature_dim: int):
        super().__init__()
        self.normalize = pixel_normalization(input_shape[0])
        self.features = build_encoder(name, input_shape, stem=stem, feature_dim=feature_dim)
        self.head = nn.Linear(self.features.feature_dim, 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, rho = self.head(self.features(self.normalize(x))).split(self.latent_dim, dim=-1)
        return mean, F.softplus(rho - 5.0)


class ConditionalEntropyBottleneck(Objective):
    """CEB classifier: Gaussian forward encoder e(z|x), class-conditional Gaussian b(z|y), classifier c(y|z)."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        self.beta = self.config.beta
        self.register_weight("residual_weight", self.beta)
        latent_dim = self.config.latent_dim
        self.eval_samples = self.config.eval_samples
        if self.config.encoder == "mlp":
            self.encoder = GaussianMLPEncoder(math.prod(self.input_shape), self.config.hidden_dim, latent_dim)
        else:
            self.encoder = GaussianConvEncoder(self.config.encoder, self.input_shape, latent_dim,
                                               stem=self.config.stem, feature_dim=self.config.feature_dim)
        # b(z|y): mu_y = W onehot(y) + bias, i.e. the columns of W plus the bias (the public ports' layer and init)
        self.backward_encoder = nn.Linear(self.num_classes, latent_dim)
        self.decoder = nn.Linear(latent_dim, self.num_classes) if self.config.classifier == "softmax" else None

    def class_means(self) -> Tensor:
        """mu_y of b(z|y) for every class, ``(num_classes, K)``."""
        return self.backward_encoder.weight.t() + self.backward_encoder.bias

    def classify(self, z: Tensor) -> Tensor:
        """Logits of c(y|z), ``(..., num_classes)`` for z ``(..., K)``.

        Consistent: log b(z|y) up to a term constant in y, mu_y . z - |mu_y|^2 / 2 (dropping -|z|^2 / 2 and the
        normaliser, which the softmax cancels, keeps the logits linear in z).
        """
        if self.decoder is not None:
            return self.decoder(z)
        means = self.class_means()
        return z @ means.t() - 0.5 * means.pow(2).sum(dim=-1)

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mean, std = self.encoder(x)
        eps = torch.randn_like(std)
        z = mean + std * eps
        ce = F.cross_entropy(self.classify(z), y)
        residual = _log_e_minus_log_b(z, eps, std, self.class_means()[y]).mean()
        return {"loss": ce + self.residual_weight * residual, "ce": ce.detach(),
                "rate_bits": nats_to_bits(residual.detach())}

    def logits(self, x: Tensor) -> Tensor:
        """One sample's logits of c(y|z); attacks average their gradients over calls (EOT)."""
        mean, std = self.encoder(x)
        return self.classify(mean + std * torch.randn_like(std))

    def representation(self, x: Tensor) -> Tensor:
        """The mean of e(z|x), (B, K)."""
        return self.encoder(x)[0]

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """e(z | x) = N(mean(x), diag std(x)^2): the information plane's sample and bounds, as vib's."""
        return self.encoder(x)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mean, std = self.encoder(x)
        logits = self.classify(mean + std * torch.randn_like(std))
        ce = F.cross_entropy(logits, y)
        eps = torch.randn((self.eval_samples, *std.shape), dtype=std.dtype, device=std.device)
        mean_probs = F.softmax(self.classify(mean + std * eps), dim=-1).mean(dim=0)
        # KL(N(mean, std^2) || N(mu_y, I)) is the standard-normal KL of the shifted mean
        residual = gaussian_kl_standard_normal(mean - self.class_means()[y], std).mean()
        return {
            "acc": (logits.argmax(dim=-1) == y).float().mean(),
            "acc_mc": (mean_probs.argmax(dim=-1) == y).float().mean(),
            "ce": ce,
            "rate_bits": nats_to_bits(residual),
            "izy_bits": math.log2(self.num_classes) - nats_to_bits(ce),
        }


def _log_e_minus_log_b(z: Tensor, eps: Tensor, std: Tensor, means: Tensor) -> Tensor:
    """log N(z; mean, diag(std^2)) - log N(z; means, I) per example, ``(B,)``, in nats, in float32.

    With z = mean + std * eps the forward density's exponent is -|eps|^2 / 2, taken from eps itself rather than
    (z - mean) / std, which loses digits when std is small; the 2 pi normalisers cancel. float32, so that bf16
    autocast on CUDA does not round a difference of two large sums.
    """
    z, eps, means = z.float(), eps.float(), means.float()
    log_std = torch.log(std.float().clamp_min(torch.finfo(torch.float32).tiny))
    return 0.5 * ((z - means).pow(2) - eps.pow(2)).sum(dim=-1) - log_std.sum(dim=-1)
