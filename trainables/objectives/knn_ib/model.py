"""IB with a k-NN entropy estimator (Kirsch, Lyle and Gal, ICML 2020 UDL workshop).

"Learning CIFAR-10 with a Simple Entropy Estimator Using Information Bottleneck Objectives"
(../shared/papers/kirsch-cifar10-simple-entropy-estimator-ib.txt). A deterministic encoder f maps
x to K latent dimensions; zero-entropy noise eps ~ N(0, I / (2 pi e)) is added in training,
Z = f(X) + eps, so H[Z | X] = 0, I[X; Z] = H[Z], and the IB and DIB objectives coincide
(section 4). The loss is the paper's eq. (10),

    loss = H[Z | Y] + (beta - 1) H[Z],          beta = the paper's beta'' in [0, 1),

in nats, with H[Z] the Kozachenko-Leonenko estimate over the batch
(:func:`~trainables.estimators.knn_entropy`, eq. 13) and H[Z | Y] the class-weighted average of
the per-class estimates within the batch (:func:`~trainables.estimators.class_conditional_knn_entropy`),
which is why batches must be class-balanced (``batch_sampler = "class_balanced"``, with more than
``k`` examples of every class). beta is named ``beta`` rather than ``beta''`` so that every "vs
beta" report applies; beta = 0 maximises I[Y; Z] alone. No decoder is trained through this loss.

After training (``final_evaluations``, which the harness runs before the attacks), on the frozen
encoder's training latents (:mod:`trainables.evaluation.decoders`):

- a Gaussian decoder, one Gaussian per class (scikit-learn), fitted to the noiseless latents with
  the noise's variance added to every covariance (exactly the Gaussian of Z | y): ``decoder/gmm_acc``;
- the paper's deep residual fully-connected decoder, trained with cross-entropy on Z (fresh noise
  per batch) for ``decoder_epochs``: ``decoder/resfc_acc``.

Both are scored on the noiseless test latents f(x), the mean of Z given x, so that the classifier
is deterministic. Afterwards ``logits(x)`` is the residual decoder on the encoder, and that is
what the attacks (FGSM curve) differentiate; before it is fitted, ``logits`` is the per-epoch
classifier below. The paper reports 92% CIFAR-10 test accuracy with either decoder.

Per-epoch metrics. Terms of ``forward`` (batch means): ``loss`` (nats), ``h_z_bits`` = H[Z],
``h_z_given_y_bits`` = H[Z | Y], ``rate_bits`` = H[Z] = I[X; Z] (with noise). ``evaluate`` gives
the same estimates on test batches (noise added as in training), ``izy_bits`` = H[Z] - H[Z | Y],
``h_z_knn_bias_bits``, the k-NN estimator's bias beside that H[Z]
(:func:`~trainables.knn_bias.knn_entropy_bias_bits`: the same estimator, same ``k``, on a
Gaussian of the batch's sample covariance, minus its exact entropy, bootstrap-corrected; ``rate_bits -
h_z_knn_bias_bits`` is H[Z] corrected for it; its draws come from a generator seeded with the
trial's ``seed``, so the training stream is untouched; NaN for a batch with no more examples
than K), and ``acc``, the nearest class mean classifier: each class's mean of the training latents f(x)
accumulated over the epoch just trained (no extra pass over the data); for a model with BatchNorm
these are train-mode latents, so it is a monitor, not the paper's result. ``representation(x)``
is f(x); the information plane adds zero-entropy noise to it with or without ``noise`` in
training, so the no-noise ablation is measured with the same ruler.

Config: :class:`trainables.objectives.knn_ib.config.KnnIbConfig` (its rule: class-balanced
batches with more than ``k`` examples per class). Paper protocol (section 5): ResNet-18, K = 256,
Adam lr 5e-4, lr x sqrt(0.1) when the loss has not improved for 10 epochs, 150 epochs.

The LayerNorm between the encoder and the linear layer to K is ours (the paper says only "K = 256
continuous latent dimensions"): it starts the latent at O(1) against the noise, which otherwise
drowns it from the first step (docs/information_plane.md, "Deviations from the paper"); LayerNorm
rather than BatchNorm because it computes the same function in train and eval mode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from trainables.config import TrialConfig
from trainables.estimators import (ZERO_ENTROPY_STD, class_conditional_knn_entropy, knn_entropy, nats_to_bits,
                                   zero_entropy_noise)
from trainables.evaluation.decoders import GaussianClassDecoder, ResidualFCDecoder, fit_residual_decoder
from trainables.knn_bias import knn_entropy_bias_bits
from trainables.models import build_encoder, pixel_normalization
from trainables.objectives.base import Objective


class KnnInformationBottleneck(Objective):
    """Deterministic encoder + zero-entropy noise, trained on H[Z|Y] + (beta - 1) H[Z] by k-NN entropies."""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__(trial, input_shape, num_classes)
        config = self.config
        self.seed, self.eval_batch_size = trial.training.seed, trial.training.eval_batch_size
        self.beta = config.beta
        self.register_weight("h_z_weight", self.beta - 1.0)
        self.k = config.k
        self.noise = config.noise
        latent_dim = config.latent_dim
        self.decoder_epochs = config.decoder_epochs

        in_channels = self.input_shape[0]
        self.normalize = pixel_normalization(in_channels)
        self.encoder = build_encoder(config.encoder, self.input_shape, stem=config.stem, feature_dim=config.feature_dim,
                                     hidden_dim=config.hidden_dim)
        # LayerNorm before the projection starts the latent at O(1) against the noise (module docstring)
        self.projection = nn.Sequential(nn.LayerNorm(self.encoder.feature_dim), nn.Linear(self.encoder.feature_dim, latent_dim))
        # Trained only by final_evaluations; the main loss never reaches it (its grads stay None).
        self.decoder = ResidualFCDecoder(latent_dim, self.num_classes, width=config.decoder_width,
                                         blocks=config.decoder_blocks)
        self.register_buffer("decoder_fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("class_sums", torch.zeros(self.num_classes, latent_dim))
        self.register_buffer("class_counts", torch.zeros(self.num_classes))

    # ---- the representation --------------------------------------------------------------------
    def latent(self, x: Tensor) -> Tensor:
        """The deterministic latent f(x), (B, K), of pixels in [0, 1]."""
        return self.projection(self.encoder(self.normalize(x)))

    def _with_noise(self, z: Tensor) -> Tensor:
        if not self.noise:
            return z
        return z + zero_entropy_noise(z.shape, device=z.device, dtype=z.dtype)

    def representation(self, x: Tensor) -> Tensor:
        """f(x); the information plane adds zero-entropy noise, whether or not training did."""
        return self.latent(x)

    # ---- training --------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Start this epoch's class means afresh (they follow the encoder as it trains)."""
        self.class_sums.zero_()
        self.class_counts.zero_()

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        z_hat = self.latent(x)
        with torch.no_grad():
            self.class_sums.index_add_(0, y, z_hat.detach().float())
            self.class_counts.index_add_(0, y, torch.ones_like(y, dtype=self.class_counts.dtype))
        z = self._with_noise(z_hat)
        h_z = knn_entropy(z, self.k)
        h_z_given_y = class_conditional_knn_entropy(z, y, self.k, num_classes=self.num_classes)
        loss = h_z_given_y + self.h_z_weight * h_z
        return {"loss": loss, "h_z_bits": nats_to_bits(h_z.detach()), "h_z_given_y_bits": nats_to_bits(h_z_given_y.detach()),
                "rate_bits": nats_to_bits(h_z.detach())}

    # ---- classification --------------------------------------------------------------------------
    def _centroid_logits(self, z_hat: Tensor) -> Tensor:
        """-||f(x) - mean_c||^2 / 2 per class (classes never seen: -inf)."""
        means = self.class_sums / self.class_counts.clamp_min(1)[:, None]
        logits = -0.5 * (z_hat.float()[:, None, :] - means[None]).square().sum(-1)
        return logits.masked_fill(self.class_counts[None] == 0, -math.inf)

    def logits(self, x: Tensor) -> Tensor:
        """The residual decoder on f(x) once fitted (call in eval mode); the nearest class mean before."""
        z_hat = self.latent(x)
        return self.decoder(z_hat) if bool(self.decoder_fitted) else self._centroid_logits(z_hat)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        z_hat = self.latent(x)
        z = self._with_noise(z_hat)
        h_z = knn_entropy(z, self.k)
        h_z_given_y = class_conditional_knn_entropy(z, y, self.k, num_classes=self.num_classes)
        # its own seeded generator: the global stream (this noise, the next epoch's batches) is left alone
        reference = torch.Generator(device=z.device).manual_seed(self.seed)
        return {
            "acc": (self._centroid_logits(z_hat).argmax(dim=-1) == y).float().mean(),
            "rate_bits": nats_to_bits(h_z),
            "h_z_knn_bias_bits": knn_entropy_bias_bits(z, self.k, generator=reference).to(h_z.dtype),
            "h_z_given_y_bits": nats_to_bits(h_z_given_y),
            "izy_bits": nats_to_bits(h_z - h_z_given_y),
        }

    # ---- after training --------------------------------------------------------------------------
    @torch.no_grad()
    def _latents(self, x: Tensor) -> Tensor:
        batch = self.eval_batch_size
        return torch.cat([self.latent(x[i : i + batch]) for i in range(0, len(x), batch)]).float()

    def final_evaluations(self, data: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Fit the Gaussian and the residual decoders on the frozen encoder; their test accuracies."""
        was_training = self.training
        self.eval()
        train_z, test_z = self._latents(data.train_x), self._latents(data.test_x)
        noise_std = ZERO_ENTROPY_STD if self.noise else 0.0
        seed = self.seed
        gaussian = GaussianClassDecoder(self.num_classes, reg_covar=noise_std**2 if self.noise else 1e-6, seed=seed)
        gmm_acc = gaussian.fit(train_z, data.train_y).accuracy(test_z, data.test_y)
        generator = torch.Generator(device=train_z.device).manual_seed(seed)
        fit_residual_decoder(self.decoder, train_z, data.train_y, epochs=self.decoder_epochs, noise_std=noise_std,
                             generator=generator)
        self.decoder_fitted.fill_(True)
        with torch.no_grad():
            resfc_acc = (self.decoder(test_z).argmax(dim=-1) == data.test_y).float().mean().item()
            centroid_acc = (self._centroid_logits(test_z).argmax(dim=-1) == data.test_y).float().mean().item()
        self.train(was_training)
        return {"decoder/gmm_acc": gmm_acc, "decoder/resfc_acc": resfc_acc, "decoder/centroid_acc": centroid_acc}, []
