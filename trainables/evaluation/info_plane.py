"""The information plane of any objective, measured with one ruler (Kirsch, Lyle and Gal, 2020, Fig. 2).

``info_plane(objective, x, y, seed=..., eval_batch_size=...)`` places the objective's
representation Z of the inputs ``x`` (a fixed held-out subset: the harness passes the first
``infoplane_subset`` test examples every ``infoplane_every`` epochs) on the plane of I(X; Z)
("preserved information") against H(Y | Z) ("residual information"), both in bits:

- **I(X; Z) = h(Z) - h(Z | X)**. h(Z) is the Kozachenko-Leonenko estimate
  (:func:`~trainables.estimators.knn_entropy`, k = 1) on one sample of Z per example, the paper's
  eq. (11). A deterministic encoder's ``representation(x)`` = f(x) is measured as
  Z = f(x) + zero-entropy noise (:func:`~trainables.estimators.zero_entropy_noise`), so
  h(Z | X) = 0 and I(X; Z) = h(Z), as in the paper. A stochastic encoder's
  ``representation_sample(x)`` gives its own sample and h(Z | X = x) (VIB's Gaussian posterior:
  sum_k log std_k + K/2 log(2 pi e), in closed form). Every objective is thus measured with the
  same estimator on the same examples.
- **H(Y | Z) <= held-out cross-entropy of a quick decoder.** For any decoder q(y | z) fitted on
  other examples, E[-log q(Y | Z)] = H(Y | Z) + KL(p(y|z) || q(y|z)) >= H(Y | Z), and an average
  over held-out examples estimates it without the optimism of scoring a decoder on the points it
  was fitted to (the paper fits its ResFC decoder on the test set and scores it there, which
  can undershoot H(Y | Z) when the decoder overfits). The decoder is scikit-learn's multinomial
  logistic regression on standardised Z (L2, C = 1), 2-fold cross-fitted: fitted on one half of
  the subset, scored on the other, and the other way round, so every example is scored once.
  Linear rather than the paper's deep ResFC decoder because it has no training schedule to tune
  and costs milliseconds: the bound is looser where the classes are not linearly separable in Z.
  The class frequencies of the fitting half (add-one smoothed), a decoder that ignores Z, are
  scored the same way, and the smaller of the two held-out cross-entropies is reported: on
  latents that carry little about Y the regression overfits, its held-out cross-entropy can
  exceed H(Y), and the bound should then be H(Y), not worse.

The k-NN estimate is biased upwards in high dimensions with few samples (tens of bits on
zero-entropy noise at d = 128 and N = 450: docs/information_plane.md, The zero point). So each
measurement also logs ``infoplane/izx_floor_bits``, the same estimator on zero-entropy noise of
the same N and d: the reading of a representation that carries nothing about X, the plane's
zero point for that latent size. Compare I(X; Z) across latent sizes against their floors.
It also logs ``infoplane/knn_bias_bits``, the estimator's bias at the measured Z's own N, d and
covariance (:func:`~trainables.knn_bias.knn_entropy_bias_bits`: the k-NN estimate on a Gaussian
of Z's sample covariance minus that Gaussian's exact entropy, bootstrap-corrected for the spread
of the sample covariance's eigenvalues at large d / N). The floor is that bias for an
isotropic Z; a latent whose variance sits in a few directions is read with a different bias,
which the floor misses. ``izx_bits - knn_bias_bits`` is I(X; Z) corrected for the bias of a
Gaussian of the same covariance: an estimate, not a bound, and one that can go below 0 where Z
is far from Gaussian (VIB at K = 256 on the digits; docs/information_plane.md).

An objective with a Gaussian ``posterior`` (vib, ceb) also logs ``infoplane/izx_lower_bits`` and
``infoplane/izx_upper_bits``, Poole et al.'s InfoNCE lower bound (at most log2 N) and
leave-one-out upper bound on the same I(X; Z), computed from the encoder's own density on the same
draws (:mod:`trainables.gaussian_mi`): no density estimate, so no bias to correct, and a check on
the k-NN reading and its correction.

Returns ``infoplane/izx_bits``, ``infoplane/izx_floor_bits``, ``infoplane/knn_bias_bits``,
``infoplane/hyz_bits`` and, when the objective's ``evaluate`` reports a ``rate_bits``, that rate
on the same subset as ``infoplane/rate_bits`` (VIB: the KL upper bound on I(X; Z); DIB: the
entropy model's code length; knn_ib: its own k-NN h(Z)). The measurement runs under a forked
RNG seeded with the trial's ``seed``: the same noise draws every epoch, and the training run's
random stream is left exactly as it was. Its cost, mostly the two logistic regressions and (with
``bias``) four more k-NN estimates: docs/information_plane.md, Cost.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from trainables.estimators import knn_entropy, nats_to_bits, zero_entropy_noise
from trainables.gaussian_mi import gaussian_draw, gaussian_encoder_mi_bounds
from trainables.knn_bias import knn_entropy_bias_bits

DECODER_C = 1.0  # inverse L2 strength of the logistic regression, on standardised latents
MIN_PROBABILITY = 1e-12  # a class the decoder gives probability 0 costs log2(1e12) = 40 bits, not inf


@torch.no_grad()
def info_plane(objective, x: Tensor, y: Tensor, *, seed: int, eval_batch_size: int,
               bias: bool = True) -> dict[str, float]:
    """I(X; Z) and an upper bound on H(Y | Z), in bits, of ``objective`` on ``(x, y)``.

    Args:
        objective: an :class:`~trainables.objectives.base.Objective`, in eval mode; one whose
            ``representation_sample`` and ``representation`` both return None gets no
            information plane (``{}``).
        x, y: the held-out subset (pixels in [0, 1], int64 labels), on the model's device.
        seed: the trial's seed: the measurement's noise draws and the decoder's folds.
        eval_batch_size: examples per forward pass (no effect on the readings).
        bias: whether to measure ``knn_bias_bits`` too, the costliest reading (four k-NN estimates
            of the measured size). It draws last, so the other readings are the same either way.
            The harness asks for it at the last epoch only, where the report reads it.

    Returns:
        ``{"infoplane/izx_bits", "infoplane/izx_floor_bits", "infoplane/knn_bias_bits", "infoplane/hyz_bits"}``,
        ``"infoplane/rate_bits"`` when the objective's ``evaluate`` reports ``rate_bits``, and
        ``"infoplane/izx_lower_bits"`` and ``"infoplane/izx_upper_bits"`` when it has a ``posterior``; ``{}``
        without a representation. ``knn_bias_bits`` is NaN when the subset has no more examples
        than Z has dimensions (:func:`~trainables.knn_bias.knn_entropy_bias_bits`), and left out
        when ``bias`` is False.

    Raises:
        ValueError: fewer than 4 examples, or a representation of the wrong shape.
    """
    if len(y) < 4 or len(x) != len(y):
        raise ValueError(f"infoplane_subset: the information plane needs at least 4 test examples with labels, "
                         f"got {len(x)} images and {len(y)} labels")
    batch = eval_batch_size
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        parts = [_sample(objective, x[i : i + batch]) for i in range(0, len(x), batch)]
        if parts[0] is None:
            return {}
        z = torch.cat([p[0] for p in parts]).float()
        conditional = torch.cat([p[1] for p in parts]).float()
        if z.dim() != 2 or conditional.shape != (len(x),):
            raise ValueError(f"the representation must be z of shape (B, d) with h(Z|X) of shape (B,), got "
                             f"{tuple(z.shape)} and {tuple(conditional.shape)}")
        if parts[0][2] is not None:  # a Gaussian encoder: Poole et al.'s bounds on the same draws, no RNG
            mean, std = (torch.cat([p[k] for p in parts]) for k in (2, 3))
            bounds = [float(nats_to_bits(b)) for b in gaussian_encoder_mi_bounds(z, mean, std)]
        else:
            bounds = None
        izx = nats_to_bits(knn_entropy(z, 1) - conditional.mean())
        floor = nats_to_bits(knn_entropy(zero_entropy_noise(z.shape, device=z.device, dtype=z.dtype), 1))
        rate = _evaluated_rate(objective, x, y, batch)
        # drawn last from the same forked, seeded stream, so izx, floor and rate read as before it
        bias_bits = knn_entropy_bias_bits(z, 1) if bias else None
    metrics = {"infoplane/izx_bits": float(izx), "infoplane/izx_floor_bits": float(floor),
               "infoplane/hyz_bits": held_out_cross_entropy_bits(z, y, seed)}
    if bias_bits is not None:
        metrics["infoplane/knn_bias_bits"] = float(bias_bits)
    if bounds is not None:
        metrics["infoplane/izx_lower_bits"], metrics["infoplane/izx_upper_bits"] = bounds
    if rate is not None:
        metrics["infoplane/rate_bits"] = rate
    return metrics


def held_out_cross_entropy_bits(z: Tensor, y: Tensor, seed: int) -> float:
    """Mean held-out cross-entropy (bits) of 2-fold cross-fitted logistic regression of ``y`` on ``z``,
    or of the class frequencies if that is smaller.

    An upper bound on H(Y | Z) in expectation (module docstring). Classes are split evenly
    between the folds (stratified, shuffled by ``seed``); a class absent from a fitting half
    gets probability :data:`MIN_PROBABILITY` from the regression on the other.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = z.detach().double().cpu().numpy()
    labels = y.detach().cpu().numpy()
    classes = np.unique(labels)
    losses, prior_losses = np.empty(len(labels)), np.empty(len(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes, and folds with a class of one member
        folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed).split(features, labels)
        for fit, score in folds:
            probabilities = np.full((len(score), len(classes)), MIN_PROBABILITY)
            fitted = np.unique(labels[fit])
            if len(fitted) == 1:
                probabilities[:, np.searchsorted(classes, fitted[0])] = 1.0
            else:
                decoder = make_pipeline(StandardScaler(), LogisticRegression(C=DECODER_C, max_iter=1000))
                decoder.fit(features[fit], labels[fit])
                probabilities[:, np.searchsorted(classes, decoder.classes_)] = decoder.predict_proba(features[score])
            chosen = probabilities[np.arange(len(score)), np.searchsorted(classes, labels[score])]
            losses[score] = -np.log2(np.maximum(chosen, MIN_PROBABILITY))
            counts = np.bincount(np.searchsorted(classes, labels[fit]), minlength=len(classes)) + 1.0
            prior_losses[score] = -np.log2(counts[np.searchsorted(classes, labels[score])] / counts.sum())
    return float(min(losses.mean(), prior_losses.mean()))


def _sample(objective, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None] | None:
    """``(z, h(Z | X), mean, std)``: a Gaussian encoder's draw from its ``posterior`` (the same draw
    as its ``representation_sample``) with that posterior; else the objective's own sample, or f(x) +
    zero-entropy noise and h = 0, with ``mean = std = None``; None if it has no representation."""
    posterior = getattr(objective, "posterior", None)
    gaussian = posterior(x) if posterior is not None else None
    if gaussian is not None:
        return (*gaussian_draw(*gaussian), *gaussian)
    sampler = getattr(objective, "representation_sample", None)
    sample = sampler(x) if sampler is not None else None
    if sample is not None:
        return (*sample, None, None)
    z = objective.representation(x)
    if z is None:
        return None
    z = z.flatten(1).float()
    return z + zero_entropy_noise(z.shape, device=z.device, dtype=z.dtype), z.new_zeros(len(z)), None, None


def _evaluated_rate(objective, x: Tensor, y: Tensor, batch: int) -> float | None:
    """The objective's own ``rate_bits`` on ``(x, y)``, weighted over batches; None if it has none."""
    total, count = 0.0, 0
    for i in range(0, len(x), batch):
        try:
            terms = objective.evaluate(x[i : i + batch], y[i : i + batch])
        except NotImplementedError:
            return None
        if "rate_bits" not in terms:
            return None
        n = len(y[i : i + batch])
        total, count = total + float(terms["rate_bits"]) * n, count + n
    return total / count if count and math.isfinite(total) else None
