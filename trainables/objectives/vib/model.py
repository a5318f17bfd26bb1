"""Deep Variational Information Bottleneck (Alemi, Fischer, Dillon and Murphy, ICLR 2017).

The IB objective I(Z; Y) - beta * I(Z; X) is bounded with a stochastic encoder
p(z|x) = N(z | mean(x), diag(std(x)^2)), a variational classifier q(y|z) and a variational
marginal r(z) = N(0, I). The loss minimised (the paper's eq. 17) is

    J_IB = 1/N sum_n  E_{eps ~ N(0, I)} [ -log q(y_n | mean(x_n) + std(x_n) * eps) ]
                      + beta * KL( p(Z | x_n) || r(Z) ),

estimated with one reparameterised sample per example; the KL is in closed form.

Reference setup (the official demo; ../shared/NOTES.md): MNIST flattened to 784 features, encoder
784-1024-1024-2K with ReLU and std = softplus(rho - 5), K = 256, a linear (softmax) decoder,
batch 100, Adam lr 1e-4 with beta1 = 0.5, lr x 0.97 every 2 epochs, EMA 0.999 of the weights,
200 epochs, beta = 1e-3. The paper reports 1.13% test error; the demo prints 1.21% with 12
samples and EMA weights, 1.81% with one sample.

The EMA (``ema_decay``; ``trainables.ema.SyncFreeEMA``) warms its decay up with TensorFlow's
``num_updates`` rule, min(0.999, (1 + t) / (10 + t)) at update t, where the demo used a plain 0.999
from the initial weights: on short runs that evaluated mostly the initialisation. At the paper's
200 epochs (60,000 / 100 * 200 = 120,000 updates) this changes nothing measurable: the warm-up
decay reaches 0.999 at update 8,990, so all that the first 9,000 updates leave in the final
average weighs 0.999 ** 111,000 = 5.9e-49 (``python3 -c "print(0.999 ** 111000)"``).

Terms of ``forward`` (training, one sample of z per example; all batch means):
    ``loss``       ce + beta * KL in nats, the quantity backpropagated;
    ``ce``         -log q(y|z) in nats;
    ``rate_bits``  KL(p(z|x) || N(0, I)) in bits, the variational upper bound on I(Z; X).

Metrics of ``evaluate``:
    ``acc``        accuracy of q(y|z) with one posterior sample ("1 shot eval");
    ``acc_mc``     accuracy of the softmax averaged over ``eval_samples`` samples (12 in the paper);
    ``ce``         -log q(y|z) in nats with one sample;
    ``rate_bits``  as above;
    ``izy_bits``   log2(num_classes) - ce / ln 2, the variational lower bound
                   I(Z; Y) >= H(Y) - E[-log q(y|z)] with H(Y) taken as log2(num_classes), which
                   holds for balanced labels (the digits test split is within 0.01 bits of it).

Config: :class:`trainables.objectives.vib.config.VibConfig`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.estimators import gaussian_kl_standard_normal, nats_to_bits
from trainables.models import GaussianMLPEncoder
from trainables.objectives.base import Objective


class VariationalInformationBottleneck(Objective):
    """Deep VIB classifier: Gaussian MLP encoder, linear decoder q(y|z), prior N(0, I)."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        self.beta = self.config.beta
        self.register_weight("kl_weight", self.beta)
        latent_dim, hidden_dim = self.config.latent_dim, self.config.hidden_dim
        self.eval_samples = self.config.eval_samples
        self.encoder = GaussianMLPEncoder(math.prod(self.input_shape), hidden_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, self.num_classes)

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mean, std = self.encoder(x)
        z = mean + std * torch.randn_like(std)
        ce = F.cross_entropy(self.decoder(z), y)
        kl = gaussian_kl_standard_normal(mean, std).mean()
        return {"loss": ce + self.kl_weight * kl, "ce": ce.detach(), "rate_bits": nats_to_bits(kl.detach())}

    def logits(self, x: Tensor) -> Tensor:
        """One posterior sample's logits; attacks average their gradients over calls (EOT)."""
        mean, std = self.encoder(x)
        return self.decoder(mean + std * torch.randn_like(std))

    def representation(self, x: Tensor) -> Tensor:
        """The posterior mean, (B, K)."""
        return self.encoder(x)[0]

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """p(z | x) = N(mean(x), diag std(x)^2): the information plane's sample of Z and its bounds on
        I(X; Z) come from it (:meth:`Objective.representation_sample`, :mod:`trainables.gaussian_mi`);
        the KL rate, the variational upper bound on I(X; Z), is logged beside them as
        ``infoplane/rate_bits``."""
        return self.encoder(x)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        mean, std = self.encoder(x)
        logits = self.decoder(mean + std * torch.randn_like(std))
        ce = F.cross_entropy(logits, y)
        # (eval_samples, B, K) samples; softmax averaged over samples, then argmax
        eps = torch.randn((self.eval_samples, *std.shape), dtype=std.dtype, device=std.device)
        mean_probs = F.softmax(self.decoder(mean + std * eps), dim=-1).mean(dim=0)
        return {
            "acc": (logits.argmax(dim=-1) == y).float().mean(),
            "acc_mc": (mean_probs.argmax(dim=-1) == y).float().mean(),
            "ce": ce,
            "rate_bits": nats_to_bits(gaussian_kl_standard_normal(mean, std).mean()),
            "izy_bits": math.log2(self.num_classes) - nats_to_bits(ce),
        }

