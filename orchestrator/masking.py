"""The gradient-masking checks explained for a reader: what each asserts and what its violation means.

One line per check, printed by the robustness report's masking table and by the MLflow tag
``gradient_masking`` of a trial that violated one. The checks themselves are computed on the trial
side (``trainables.evaluation.masking``, whose ``CHECKS`` a test keeps equal to this table's keys);
this module imports nothing, so the driver can use it without torch or pandas.
"""

from __future__ import annotations

CHECKS = {
    "gradient_nonzero": "the input gradient is non-zero on the clean-correct examples; violated: part of the "
    "model's output is cut from its input in the graph, so gradient attacks cannot move those examples",
    "fgsm_monotone_in_epsilon": "FGSM accuracy does not rise as epsilon grows; violated: a larger step finds "
    "fewer adversarials, a sign of a gradient that points the wrong way far from x",
    "fgsm_decreases_with_epsilon": "FGSM at the largest epsilon lowers accuracy below clean accuracy; violated: "
    "the gradient does not move the model at all (zero gradients fail this check)",
    "pgd_monotone_in_steps": "PGD accuracy does not rise with more steps; violated: more iterations found "
    "fewer adversarials, so the attack is not converging",
    "pgd_not_weaker_than_fgsm": "PGD accuracy is not above FGSM accuracy at the same epsilon; violated: the "
    "iterative attack is weaker than its own first step",
    "unbounded_attack_succeeds": "PGD with no budget (epsilon 1) breaks at least 99% of the clean-correct "
    "examples; violated: the gradient leads nowhere even without a budget",
    "noise_not_stronger_than_gradient": "random uniform noise at the largest epsilon breaks no more examples "
    "than the gradient attacks there; violated: the gradient attacks are worse than guessing",
    "apgd_not_stronger_than_pgd": "APGD does not beat PGD by more than 5 points at the same epsilon; violated: "
    "PGD has not converged, and PGD-only figures overstate robustness",
    "cw_converged": "three times the CW iterations change the robust share at no L2 radius by more than 2 points "
    "(and one example) on the first 100 examples; violated: CW has not converged, and its L2 accuracies "
    "overstate robustness",
    "cw_succeeds": "Carlini-Wagner L2 finds an adversarial for at least 99% of the clean-correct examples; "
    "violated: the unbounded minimum-norm attack fails, so its radii and median understate the attack",
}


def explain(check: str) -> str:
    """The check's one-line statement and what its violation means, or its name for an unknown check."""
    return CHECKS.get(check, check)

# The rows of the robustness table whose numbers a violated check makes unreliable, as
# (evaluation, norm) pairs with norm None for any: a check on PGD's convergence says nothing against
# APGD or the worst case (which already counts APGD), a failing CW says nothing about L-inf
# attacks. A check not named here, and every check about the gradient itself, flags every row.
PGD_ROWS = (("pgd", None),)
AFFECTS = {
    "pgd_monotone_in_steps": PGD_ROWS,
    "pgd_not_weaker_than_fgsm": PGD_ROWS,
    "apgd_not_stronger_than_pgd": PGD_ROWS,
    "cw_succeeds": (("cw_l2", None), ("worst_case", "l2")),
    "cw_converged": (("cw_l2", None), ("worst_case", "l2")),
}


def makes_unreliable(check: str, evaluation: str, norm: str) -> bool:
    """Whether a violation of ``check`` flags the table row of ``evaluation`` at ``norm``."""
    if check not in AFFECTS:
        return True
    return any(evaluation == e and (n is None or n == norm) for e, n in AFFECTS[check])
