"""Linear evaluation of a frozen representation: the downstream probe of representation learning.

The protocol of Tschannen et al. (ICLR 2020; their notebook, ../shared/NOTES.md): scale every
feature to [0, 1] with scikit-learn's ``MinMaxScaler`` fitted on the training features, then fit
scikit-learn's ``LogisticRegression`` (multinomial, L-BFGS, L2 penalty with C = 1) and report its
accuracy on the training and the test features. Any objective that learns a representation
without labels can call :func:`linear_probe` on its features.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler


def _as_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def linear_probe(train_features, train_labels, test_features, test_labels, *, max_iter: int = 1000,
                 C: float = 1.0) -> dict[str, float]:
    """Fit MinMaxScaler + LogisticRegression on the training features; accuracies on both splits.

    Args:
        train_features: ``(N, D)`` features (tensor or array), float.
        train_labels: ``(N,)`` integer labels; at least two classes.
        test_features: ``(M, D)`` features, the same D.
        test_labels: ``(M,)`` integer labels.
        max_iter: L-BFGS iterations (scikit-learn warns if they do not suffice).
        C: inverse L2 regularisation strength.

    Returns:
        ``{"train_acc": float, "test_acc": float}``, fractions in [0, 1].

    Raises:
        ValueError: shapes do not match, a split is empty, there are fewer than two classes, or
            a feature is not finite.
    """
    x_train, y_train, x_test, y_test = map(_as_numpy, (train_features, train_labels, test_features, test_labels))
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"linear_probe needs (N, D) and (M, D) features, got {x_train.shape} and {x_test.shape}")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"linear_probe needs one label per example and non-empty splits, got {len(x_train)} train features, "
                         f"{len(y_train)} labels, {len(x_test)} test features, {len(y_test)} labels")
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"linear_probe needs at least two classes in the training labels, got {np.unique(y_train)}")
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        raise ValueError("linear_probe: the features contain NaN or infinite values")
    scaler = MinMaxScaler().fit(x_train)
    classifier = LogisticRegression(max_iter=max_iter, C=C)
    classifier.fit(scaler.transform(x_train), y_train)
    return {
        "train_acc": float(classifier.score(scaler.transform(x_train), y_train)),
        "test_acc": float(classifier.score(scaler.transform(x_test), y_test)),
    }
