"""Gradient-masking checks on robust accuracies (Athalye, Carlini and Wagner, ICML 2018, section 3.1;
Carlini et al., "On Evaluating Adversarial Robustness", 2019, section 5).

Robustness that comes from gradients that are zero, shattered or noisy is not robustness: a
gradient attack fails while a weaker or blind one would succeed. Each check below compares
accuracies the suite already measured and says whether they are ordered as a working gradient
attack orders them. A violated check does not prove masking, and a quiet one does not rule it out.

Checks (rows with ``evaluation="masking"``, ``metric=<name>``, value 1.0 when violated):

- ``fgsm_monotone_in_epsilon``: FGSM accuracy (clean accuracy counting as epsilon 0) must not
  rise with epsilon: no accuracy may exceed the lowest one at a smaller epsilon by more than
  the tolerance.
- ``fgsm_decreases_with_epsilon``: FGSM at the largest epsilon must lower accuracy below clean
  accuracy by more than the tolerance. A model whose gradient is zero (an argmax output, a
  rounding without straight-through) is never moved by FGSM and fails only this check.
  Skipped when clean accuracy is within the tolerance of 0 (nothing left to break).
- ``pgd_monotone_in_steps``: PGD accuracy must not rise with the number of steps. With the
  worst-case-over-iterates convention of :func:`trainables.evaluation.attacks.pgd` it holds by
  construction within one run; it guards accuracies merged from runs or conventions.
- ``pgd_not_weaker_than_fgsm``: PGD with the most steps must not leave accuracy higher than FGSM
  at the same epsilon: an FGSM epsilon within 1e-6 of ``pgd_epsilon``, or equal to it in the 4
  significant digits of the metric names (``0.03137`` is 8/255).

A check whose inputs were not measured is skipped (no row).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAME_EPSILON = 1e-6  # an FGSM epsilon this close to pgd_epsilon is "the same epsilon" (or one printed the same)
_FLOAT_SLACK = 1e-9  # accuracies are k/n: a rise of exactly the tolerance must not count as more

CHECKS = ("fgsm_monotone_in_epsilon", "fgsm_decreases_with_epsilon", "pgd_monotone_in_steps",
          "pgd_not_weaker_than_fgsm")


def masking_checks(fgsm_acc: Mapping[float, float], pgd_acc: Mapping[int, float], pgd_epsilon: float,
                   tolerance: float, *, clean_acc: float | None = None) -> list[dict[str, Any]]:
    """Evaluate the checks above on measured accuracies.

    Args:
        fgsm_acc: FGSM robust accuracy per epsilon (may be empty).
        pgd_acc: PGD robust accuracy at ``pgd_epsilon`` per number of steps (may be empty).
        pgd_epsilon: the L-inf radius of the PGD runs.
        tolerance: how much an accuracy may move the wrong way before the check fires; the suite
            passes one example's share 1/n plus twice the share of examples whose clean decision
            changed between two evaluations (0 for a deterministic model; docs/robustness.md).
        clean_acc: accuracy on the clean inputs, taken as FGSM at epsilon 0; ``None`` skips
            ``fgsm_decreases_with_epsilon``.

    Returns:
        One row per evaluated check, with the keys of ``evaluations.parquet``.
    """
    if not tolerance >= 0:
        raise ValueError(f"masking_checks: tolerance must be >= 0, got {tolerance!r}")
    rows = []
    curve = {float(e): float(a) for e, a in fgsm_acc.items()}
    if clean_acc is not None:
        curve.setdefault(0.0, float(clean_acc))
    if len(curve) >= 2:
        rows.append(_row("fgsm_monotone_in_epsilon", _rises(curve, tolerance), None, 1))
    largest = max(fgsm_acc, default=0.0)
    if clean_acc is not None and largest > 0 and clean_acc > tolerance + _FLOAT_SLACK:
        violated = clean_acc - fgsm_acc[largest] <= tolerance + _FLOAT_SLACK
        rows.append(_row("fgsm_decreases_with_epsilon", violated, float(largest), 1))
    if len(pgd_acc) >= 2:
        rows.append(_row("pgd_monotone_in_steps", _rises({int(k): float(a) for k, a in pgd_acc.items()}, tolerance),
                         float(pgd_epsilon), None))
    same = [e for e in fgsm_acc if abs(e - pgd_epsilon) <= SAME_EPSILON or f"{e:.4g}" == f"{pgd_epsilon:.4g}"]
    if same and pgd_acc:
        most = max(pgd_acc)
        violated = pgd_acc[most] > fgsm_acc[same[0]] + tolerance + _FLOAT_SLACK
        rows.append(_row("pgd_not_weaker_than_fgsm", violated, float(pgd_epsilon), int(most)))
    return rows


def _rises(accuracy_by_strength: Mapping[float, float], tolerance: float) -> bool:
    """Whether some accuracy exceeds the lowest accuracy at a weaker strength by more than tolerance."""
    lowest = float("inf")
    for strength in sorted(accuracy_by_strength):
        if accuracy_by_strength[strength] > lowest + tolerance + _FLOAT_SLACK:
            return True
        lowest = min(lowest, accuracy_by_strength[strength])
    return False


def _row(check: str, violated: bool, epsilon: float | None, steps: int | None) -> dict[str, Any]:
    return {"evaluation": "masking", "metric": check, "norm": "linf", "epsilon": epsilon, "steps": steps,
            "index": None, "value": 1.0 if violated else 0.0}
