"""Decoders fitted after training on a frozen encoder's latents (Kirsch, Lyle and Gal, 2020, section 5).

``knn_ib`` trains its encoder without a decoder; these two read its latents afterwards:

- :class:`GaussianClassDecoder`: one Gaussian per class (scikit-learn ``GaussianMixture`` with one
  full-covariance component, fitted to that class's latents), the class prior its share of the
  training set, and the decision argmax_c log p(c) + log N(z; mu_c, Sigma_c). The paper's
  appendix A.2 motivates it: with zero-entropy noise the IB objective clusters the latents by class.
- :class:`ResidualFCDecoder`: the paper's deep decoder, "a layer that maps from the latent to 1024
  units, then 5 residual blocks of BatchNorm x ReLU x 1024 FC linear x BatchNorm x ReLU x 1024 FC
  layer, and a final BatchNorm and fully-connected linear layer to the output classes", trained
  with cross-entropy by :func:`fit_residual_decoder`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

DECODER_LR = 1e-3  # Adam learning rate of the residual decoder (the paper does not give its own)
DECODER_BATCH_SIZE = 128


class ResidualBlock(nn.Module):
    """``x + Linear(ReLU(BN(Linear(ReLU(BN(x))))))``, width preserved (pre-activation, He et al. 2016)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width),
                                  nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualFCDecoder(nn.Module):
    """Latent -> ``width`` -> ``blocks`` residual blocks -> BatchNorm -> Linear to the classes.

    Paper: ``width = 1024``, ``blocks = 5``. Shape: ``(B, latent_dim)`` -> ``(B, num_classes)`` logits.
    """

    def __init__(self, latent_dim: int, num_classes: int, *, width: int = 1024, blocks: int = 5):
        super().__init__()
        for name, value, minimum in (("latent_dim", latent_dim, 1), ("num_classes", num_classes, 2),
                                     ("width", width, 1), ("blocks", blocks, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"ResidualFCDecoder: {name} must be an int >= {minimum}, got {value!r}")
        self.net = nn.Sequential(nn.Linear(latent_dim, width), *(ResidualBlock(width) for _ in range(blocks)),
                                 nn.BatchNorm1d(width), nn.Linear(width, num_classes))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def fit_residual_decoder(decoder: ResidualFCDecoder, z: Tensor, y: Tensor, *, epochs: int, noise_std: float,
                         generator: torch.Generator) -> None:
    """Train ``decoder`` in place with cross-entropy on latents ``z`` (frozen, detached) and labels ``y``.

    Adam (lr :data:`DECODER_LR`), batches of :data:`DECODER_BATCH_SIZE` in an order drawn from
    ``generator``, ``epochs`` passes. Each batch gets fresh Gaussian noise of std ``noise_std``
    (the zero-entropy noise of the representation, or 0), so the decoder models p(y | z) for
    Z = f(X) + noise. Leaves the decoder in eval mode.
    """
    z, y = z.detach(), y.detach()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=DECODER_LR)
    decoder.train()
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator, device=generator.device).to(z.device)
            for index in order.split(DECODER_BATCH_SIZE):
                if len(index) < 2:  # BatchNorm needs two examples
                    continue
                batch = z[index]
                if noise_std > 0:
                    noise = torch.randn(batch.shape, generator=generator, device=generator.device, dtype=batch.dtype)
                    batch = batch + noise_std * noise.to(batch.device)
                loss = F.cross_entropy(decoder(batch), y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    decoder.eval()


class GaussianClassDecoder:
    """One scikit-learn Gaussian per class; predicts argmax_c log p(c) + log N(z; mu_c, Sigma_c).

    ``reg_covar`` is added to every covariance's diagonal. Fitted to noiseless latents f(x) with
    ``reg_covar`` = the variance of the zero-entropy noise, each class's Gaussian is exactly the
    one of Z = f(X) + noise: Cov(Z | c) = Cov(f(X) | c) + s^2 I, with no sampling noise in it.
    """

    def __init__(self, num_classes: int, *, reg_covar: float = 1e-6, seed: int = 0):
        self.num_classes, self.reg_covar, self.seed = int(num_classes), float(reg_covar), int(seed)
        self.components: dict[int, object] = {}
        self.log_priors: dict[int, float] = {}

    def fit(self, z: Tensor, y: Tensor) -> GaussianClassDecoder:
        """Fit one Gaussian per class present in ``y`` (a class needs two examples)."""
        from sklearn.mixture import GaussianMixture

        features, labels = _numpy(z), y.detach().cpu().numpy()
        for c in range(self.num_classes):
            members = features[labels == c]
            if len(members) < 2:
                continue
            self.components[c] = GaussianMixture(n_components=1, covariance_type="full", reg_covar=self.reg_covar,
                                                 random_state=self.seed).fit(members)
            self.log_priors[c] = float(np.log(len(members) / len(labels)))
        if not self.components:
            raise ValueError(f"GaussianClassDecoder: no class has two training examples among {len(labels)}")
        return self

    def log_joint(self, z: Tensor) -> np.ndarray:
        """``(N, num_classes)`` log p(c) + log p(z | c); -inf for classes not fitted."""
        features = _numpy(z)
        scores = np.full((len(features), self.num_classes), -np.inf)
        for c, component in self.components.items():
            scores[:, c] = self.log_priors[c] + component.score_samples(features)
        return scores

    def accuracy(self, z: Tensor, y: Tensor) -> float:
        return float((self.log_joint(z).argmax(axis=1) == y.detach().cpu().numpy()).mean())


def _numpy(z: Tensor) -> np.ndarray:
    return z.detach().double().cpu().numpy()
