"""The information plane of any objective, measured with one ruler (Kirsch, Lyle and Gal, 2020, Fig. 2).

``info_plane(objective, x, y, config)`` places the objective's representation Z of the inputs
``x`` (a fixed held-out subset: the harness passes the first ``infoplane_subset`` test examples
every ``infoplane_every`` epochs) on the plane of I(X; Z) ("preserved information") against
H(Y | Z) ("residual information"), both in bits:

- **I(X; Z) = h(Z) - h(Z | X)**. h(Z) is the Kozachenko-Leonenko estimate
  (:func:`~trainables.estimators.knn_entropy`, k = 1) on one sample of Z per example, the paper's
  eq. (11); h(Z | X) comes from the objective's ``representation(x)`` hook. A deterministic
  encoder measures f(x) + zero-entropy noise, so h(Z | X) = 0 and I(X; Z) = h(Z), as in the
  paper; VIB's Gaussian posterior has h(Z | X = x) = sum_k log std_k + K/2 log(2 pi e) in closed
  form. Every objective is thus measured with the same estimator on the same examples.
- **H(Y | Z) <= held-out cross-entropy of a quick decoder.** For any decoder q(y | z) fitted on
  other examples, E[-log q(Y | Z)] = H(Y | Z) + KL(p(y|z) || q(y|z)) >= H(Y | Z), and an average
  over held-out examples estimates it without the optimism of scoring a decoder on the points it
  was fitted to (the paper fits its ResFC decoder on the test set and scores it there, which
  can undershoot H(Y | Z) when the decoder overfits). The decoder is scikit-learn's multinomial
  logistic regression on standardised Z (L2, C = 1), 2-fold cross-fitted: fitted on one half of
  the subset, scored on the other, and the other way round, so every example is scored once.
  Linear rather than the paper's deep ResFC decoder because it has no training schedule to tune
  and costs milliseconds: the bound is looser where the classes are not linearly separable in Z.

Returns ``infoplane/izx_bits``, ``infoplane/hyz_bits`` and, when the objective's ``evaluate``
reports a ``rate_bits``, that rate on the same subset as ``infoplane/rate_bits`` (VIB: the KL
upper bound on I(X; Z); DIB: the entropy model's code length; knn_ib: its own k-NN h(Z)). The
measurement runs under a forked RNG seeded with the trial's ``seed``: the same noise draws every
epoch, and the training run's random stream is left exactly as it was.

Cost (digits, 450 test examples, small conv encoder with K = 32, one CPU thread): about
0.1 s per call, most of it the two logistic regressions; see docs/information_plane.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainables.estimators import knn_entropy, nats_to_bits

DECODER_C = 1.0  # inverse L2 strength of the logistic regression, on standardised latents
MIN_PROBABILITY = 1e-12  # a class the decoder gives probability 0 costs log2(1e12) = 40 bits, not inf


@torch.no_grad()
def info_plane(objective, x: Tensor, y: Tensor, config: Mapping[str, Any]) -> dict[str, float]:
    """I(X; Z) and an upper bound on H(Y | Z), in bits, of ``objective`` on ``(x, y)``.

    Args:
        objective: an :class:`~trainables.objectives.base.Objective`, in eval mode; one whose
            ``representation`` returns None gets no information plane (``{}``).
        x, y: the held-out subset (pixels in [0, 1], int64 labels), on the model's device.
        config: the trial config; reads ``seed`` and ``eval_batch_size``.

    Returns:
        ``{"infoplane/izx_bits", "infoplane/hyz_bits"}`` and ``"infoplane/rate_bits"`` when the
        objective's ``evaluate`` reports ``rate_bits``; ``{}`` without a representation.

    Raises:
        ValueError: fewer than 4 examples, or a representation of the wrong shape.
    """
    if len(y) < 4 or len(x) != len(y):
        raise ValueError(f"infoplane_subset: the information plane needs at least 4 test examples with labels, "
                         f"got {len(x)} images and {len(y)} labels")
    seed = int(config["seed"])
    batch = int(config["eval_batch_size"])
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        parts = [objective.representation(x[i : i + batch]) for i in range(0, len(x), batch)]
        if parts[0] is None:
            return {}
        z = torch.cat([p[0] for p in parts]).float()
        conditional = torch.cat([p[1] for p in parts]).float()
        if z.dim() != 2 or conditional.shape != (len(x),):
            raise ValueError(f"representation(x) must give z of shape (B, d) and h(Z|X) of shape (B,), got "
                             f"{tuple(z.shape)} and {tuple(conditional.shape)}")
        izx = nats_to_bits(knn_entropy(z, 1) - conditional.mean())
        rate = _evaluated_rate(objective, x, y, batch)
    metrics = {"infoplane/izx_bits": float(izx), "infoplane/hyz_bits": held_out_cross_entropy_bits(z, y, seed)}
    if rate is not None:
        metrics["infoplane/rate_bits"] = rate
    return metrics


def held_out_cross_entropy_bits(z: Tensor, y: Tensor, seed: int) -> float:
    """Mean held-out cross-entropy (bits) of 2-fold cross-fitted logistic regression of ``y`` on ``z``.

    An upper bound on H(Y | Z) in expectation (module docstring). Classes are split evenly
    between the folds (stratified, shuffled by ``seed``); a class absent from a fitting half
    gets probability :data:`MIN_PROBABILITY` on the other.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = z.detach().double().cpu().numpy()
    labels = y.detach().cpu().numpy()
    classes = np.unique(labels)
    losses = np.empty(len(labels))
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
    return float(losses.mean())


def _evaluated_rate(objective, x: Tensor, y: Tensor, batch: int) -> float | None:
    """The objective's own ``rate_bits`` on ``(x, y)``, weighted over batches; None if it has none."""
    total, count = 0.0, 0
    for i in range(0, len(x), batch):
        terms = objective.evaluate(x[i : i + batch], y[i : i + batch])
        if "rate_bits" not in terms:
            return None
        n = len(y[i : i + batch])
        total, count = total + float(terms["rate_bits"]) * n, count + n
    return total / count if count and math.isfinite(total) else None
