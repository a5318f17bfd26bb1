"""Gradient-masking checks (Athalye, Carlini and Wagner, ICML 2018, section 3.1; Carlini et al., "On
Evaluating Adversarial Robustness", 2019, section 5 and its checklist).

Robustness that comes from gradients that are zero, shattered or noisy is not robustness: a
gradient attack fails while a blind, unbounded or better-tuned one succeeds. Each check below
compares results the suite measured and says whether they are what a working gradient attack on
a model without masked gradients gives. A violated check does not prove masking, and quiet checks
do not rule it out. The driver-side explanations of each check (report table, MLflow tag) are in
``orchestrator.masking.CHECKS``; a test keeps the two lists equal.

Checks (rows with ``evaluation="masking"``, ``metric=<name>``, value 1.0 when violated):

- ``gradient_nonzero``: no more than the tolerance's share of the clean-correct examples has an
  input gradient of the logit margin that is exactly zero (or absent: an output cut from ``x`` in
  the graph). A ``round(h).detach()`` or an argmax inside the model, or a model that masks part of
  the batch, fails it.
- ``fgsm_monotone_in_epsilon``: FGSM accuracy (clean accuracy counting as epsilon 0) must not rise
  with epsilon by more than the tolerance.
- ``fgsm_decreases_with_epsilon``: FGSM at the largest epsilon lowers accuracy below clean accuracy
  by more than the tolerance (skipped when clean accuracy is within the tolerance of 0).
- ``pgd_monotone_in_steps`` (per PGD epsilon): PGD accuracy must not rise with the step count.
  With the worst-case-over-iterates convention of :func:`~trainables.evaluation.attacks.pgd` it
  holds by construction for a deterministic model; it guards stochastic models.
- ``pgd_not_weaker_than_fgsm`` (per epsilon both ran at): PGD with the most steps must not leave
  accuracy above FGSM's.
- ``unbounded_attack_succeeds``: PGD with epsilon 1 (the whole [0, 1] image box) must break at
  least ``1 - UNBOUNDED_MISS`` of the clean-correct examples: an unbounded attack that fails means
  the gradient does not lead anywhere (Carlini et al. 2019, 5.2: "verify that unbounded attacks
  reach 100% success").
- ``noise_not_stronger_than_gradient`` (at the largest L-inf epsilon): random uniform noise in the
  L-inf ball must not break more examples than the strongest gradient attack there (PGD, APGD or
  FGSM): a gradient attack weaker than blind noise is following a useless gradient.
- ``apgd_not_stronger_than_pgd`` (per PGD epsilon): APGD (the lower of APGD-CE and APGD-DLR) must
  not beat PGD with the most steps by more than ``APGD_GAP``: if it does, PGD has not converged
  (too few steps or a bad step size), and PGD-only numbers from this setup overstate robustness.
- ``cw_succeeds``: Carlini-Wagner L2, which has no budget, must find an adversarial example for
  at least ``1 - UNBOUNDED_MISS`` of the clean-correct examples.
- ``cw_converged``: on the first examples, CW with three times the iterations must not change the
  robust share at any L2 radius by more than ``CW_GAP`` plus one example's share of that subset
  (Carlini et al. 2019, 5.2: more iterations must stop lowering accuracy).

A check whose inputs were not measured is skipped (no row).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAME_EPSILON = 1e-6  # an FGSM epsilon this close to a PGD epsilon is "the same epsilon" (or one printed the same)
_FLOAT_SLACK = 1e-9  # accuracies are k/n: a rise of exactly the tolerance must not count as more
UNBOUNDED_MISS = 0.01  # an unbounded attack must succeed on >= 99% of the clean-correct examples
APGD_GAP = 0.05  # "a few points": APGD beating PGD by more than this says PGD did not converge
CW_GAP = 0.02  # more CW iterations moving robust accuracy by more than this: CW did not converge

CHECKS = ("gradient_nonzero", "fgsm_monotone_in_epsilon", "fgsm_decreases_with_epsilon", "pgd_monotone_in_steps",
          "pgd_not_weaker_than_fgsm", "unbounded_attack_succeeds", "noise_not_stronger_than_gradient",
          "apgd_not_stronger_than_pgd", "cw_succeeds", "cw_converged")


def masking_checks(*, tolerance: float, clean_acc: float | None = None,
                   fgsm_acc: Mapping[float, float] | None = None,
                   pgd_acc: Mapping[float, Mapping[int, float]] | None = None,
                   apgd_acc: Mapping[float, float] | None = None,
                   noise_acc: tuple[float, float] | None = None,
                   zero_gradient_fraction: float | None = None,
                   unbounded_success: float | None = None,
                   cw_success: float | None = None,
                   cw_convergence_gap: float | None = None,
                   cw_check_examples: int = 1) -> list[dict[str, Any]]:
    """Evaluate the checks above on measured results; every argument but ``tolerance`` may be absent.

    Args:
        tolerance: how much an accuracy may move the wrong way before a check fires; the suite
            passes one example's share 1/n plus twice the share of examples whose clean decision
            changed between two evaluations (0 for a deterministic model; docs/robustness.md).
        clean_acc: accuracy on the clean inputs (FGSM at epsilon 0).
        fgsm_acc: FGSM robust accuracy per L-inf epsilon.
        pgd_acc: PGD robust accuracy per L-inf epsilon, then per step count.
        apgd_acc: per L-inf epsilon, the lowest accuracy of the APGD variants run there.
        noise_acc: ``(epsilon, accuracy)`` of random uniform noise at the largest L-inf epsilon.
        zero_gradient_fraction: share of the clean-correct examples whose input gradient is zero.
        unbounded_success: share of the clean-correct examples that unbounded PGD broke.
        cw_success: share of the clean-correct examples for which CW-L2 found an adversarial.
        cw_convergence_gap: the largest change, over the L2 radii, of the robust share of the first
            ``cw_check_examples`` examples when CW runs three times the iterations.

    Returns:
        One row per evaluated check, with the keys of ``evaluations.parquet``.
    """
    if not tolerance >= 0:
        raise ValueError(f"masking_checks: tolerance must be >= 0, got {tolerance!r}")
    fgsm_acc = {float(e): float(a) for e, a in (fgsm_acc or {}).items()}
    pgd_acc = {float(e): {int(k): float(a) for k, a in by_steps.items()} for e, by_steps in (pgd_acc or {}).items()}
    apgd_acc = {float(e): float(a) for e, a in (apgd_acc or {}).items()}
    slack = tolerance + _FLOAT_SLACK
    rows = []
    if zero_gradient_fraction is not None:
        rows.append(_row("gradient_nonzero", zero_gradient_fraction > slack, "", None, None))
    curve = dict(fgsm_acc)
    if clean_acc is not None:
        curve.setdefault(0.0, float(clean_acc))
    if fgsm_acc and len(curve) >= 2:
        rows.append(_row("fgsm_monotone_in_epsilon", _rises(curve, tolerance), "linf", None, 1))
    if fgsm_acc and clean_acc is not None and clean_acc > slack:
        largest = max(fgsm_acc)
        rows.append(_row("fgsm_decreases_with_epsilon", clean_acc - fgsm_acc[largest] <= slack, "linf", largest, 1))
    for epsilon, by_steps in sorted(pgd_acc.items()):
        most = max(by_steps)
        if len(by_steps) >= 2:
            rows.append(_row("pgd_monotone_in_steps", _rises(by_steps, tolerance), "linf", epsilon, None))
        same = _same_epsilon(epsilon, fgsm_acc)
        if same is not None:
            rows.append(_row("pgd_not_weaker_than_fgsm", by_steps[most] > fgsm_acc[same] + slack, "linf", epsilon, most))
        if epsilon in apgd_acc:
            violated = apgd_acc[epsilon] < by_steps[most] - APGD_GAP - slack
            rows.append(_row("apgd_not_stronger_than_pgd", violated, "linf", epsilon, most))
    if unbounded_success is not None:
        rows.append(_row("unbounded_attack_succeeds", unbounded_success < 1 - UNBOUNDED_MISS - _FLOAT_SLACK,
                         "linf", 1.0, None))
    if noise_acc is not None:
        epsilon, accuracy = float(noise_acc[0]), float(noise_acc[1])
        gradient = [by_steps[max(by_steps)] for e, by_steps in pgd_acc.items() if abs(e - epsilon) <= SAME_EPSILON]
        gradient += [a for e, a in apgd_acc.items() if abs(e - epsilon) <= SAME_EPSILON]
        same = _same_epsilon(epsilon, fgsm_acc)
        gradient += [fgsm_acc[same]] if same is not None else []
        if gradient:
            rows.append(_row("noise_not_stronger_than_gradient", accuracy < min(gradient) - slack, "linf", epsilon, None))
    if cw_success is not None:
        rows.append(_row("cw_succeeds", cw_success < 1 - UNBOUNDED_MISS - _FLOAT_SLACK, "l2", None, None))
    if cw_convergence_gap is not None:
        violated = cw_convergence_gap > CW_GAP + 1 / max(cw_check_examples, 1) + _FLOAT_SLACK
        rows.append(_row("cw_converged", violated, "l2", None, None))
    return rows


def _same_epsilon(epsilon: float, accuracy_by_epsilon: Mapping[float, float]) -> float | None:
    """The key of ``accuracy_by_epsilon`` equal to ``epsilon`` within 1e-6 or in 4 significant digits (8/255)."""
    for other in accuracy_by_epsilon:
        if abs(other - epsilon) <= SAME_EPSILON or f"{other:.4g}" == f"{epsilon:.4g}":
            return other
    return None


def _rises(accuracy_by_strength: Mapping[float, float], tolerance: float) -> bool:
    """Whether some accuracy exceeds the lowest accuracy at a weaker strength by more than tolerance."""
    lowest = float("inf")
    for strength in sorted(accuracy_by_strength):
        if accuracy_by_strength[strength] > lowest + tolerance + _FLOAT_SLACK:
            return True
        lowest = min(lowest, accuracy_by_strength[strength])
    return False


def _row(check: str, violated: bool, norm: str, epsilon: float | None, steps: int | None) -> dict[str, Any]:
    return {"evaluation": "masking", "metric": check, "norm": norm, "epsilon": epsilon, "steps": steps,
            "index": None, "value": 1.0 if violated else 0.0}
