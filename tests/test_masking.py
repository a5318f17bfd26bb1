"""Gradient-masking checks: on hand-made results, on models that mask their gradients, on one that does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from orchestrator.masking import CHECKS as EXPLAINED
from tests.test_attacks import TinyObjective, digits_classifier, evaluate
from trainables.evaluation.masking import APGD_GAP, CHECKS, masking_checks

N = 400
TOLERANCE = 1 / N  # one example's share, as the suite passes for a deterministic model
EPS = 8 / 255


def flags(rows):
    return {row["metric"]: row["value"] for row in rows}


def checks(**measured):
    return masking_checks(tolerance=TOLERANCE, **measured)


# --- masking_checks on hand-made results ---

CONSISTENT = dict(clean_acc=0.9, fgsm_acc={0.01: 0.8, 0.02: 0.6, EPS: 0.4}, pgd_acc={EPS: {7: 0.3, 20: 0.25}},
                  apgd_acc={EPS: 0.23}, noise_acc=(EPS, 0.85), zero_gradient_fraction=0.0, unbounded_success=1.0,
                  cw_success=1.0, cw_convergence_gap=0.02, cw_check_examples=100)


def test_consistent_results_raise_no_flag():
    rows = checks(**CONSISTENT)
    assert flags(rows) == {check: 0.0 for check in CHECKS}
    assert all(set(row) == {"evaluation", "metric", "norm", "epsilon", "steps", "index", "value"} for row in rows)
    assert all(row["evaluation"] == "masking" and row["index"] is None for row in rows)


def test_every_check_has_a_one_line_explanation_on_the_driver():
    assert set(EXPLAINED) == set(CHECKS)
    assert all("violated:" in text and "\n" not in text for text in EXPLAINED.values())


def test_accuracy_rising_with_epsilon_is_flagged():
    rows = checks(fgsm_acc={0.01: 0.6, 0.02: 0.7, 0.03: 0.5})
    assert flags(rows) == {"fgsm_monotone_in_epsilon": 1.0}
    # a slow climb of steps each within the tolerance is still a climb
    climb = {0.01 * i: 0.5 + 0.8 * TOLERANCE * i for i in range(1, 5)}
    assert flags(checks(fgsm_acc=climb))["fgsm_monotone_in_epsilon"] == 1.0
    # clean accuracy counts as epsilon 0
    assert flags(checks(fgsm_acc={0.01: 0.95}, clean_acc=0.9))["fgsm_monotone_in_epsilon"] == 1.0


def test_more_steps_giving_higher_accuracy_is_flagged_per_epsilon():
    rows = checks(pgd_acc={EPS: {7: 0.40, 20: 0.45}, 0.1: {7: 0.2, 20: 0.1}})
    assert [(r["epsilon"], r["value"]) for r in rows] == [(pytest.approx(EPS), 1.0), (0.1, 0.0)]
    assert {r["metric"] for r in rows} == {"pgd_monotone_in_steps"} and rows[0]["norm"] == "linf"


def test_pgd_above_fgsm_at_the_same_epsilon_is_flagged():
    rows = checks(fgsm_acc={0.0314: 0.30, EPS: 0.30}, pgd_acc={EPS + 5e-7: {7: 0.50, 20: 0.45}})
    assert flags(rows)["pgd_not_weaker_than_fgsm"] == 1.0
    [row] = [r for r in rows if r["metric"] == "pgd_not_weaker_than_fgsm"]
    assert row["steps"] == 20  # the strongest PGD is the one compared


def test_same_epsilon_as_written_in_the_metric_names():
    """The default FGSM list writes 8/255 as 0.03137 (2.5e-6 away): still PGD's epsilon; 0.0314 is not."""
    assert "pgd_not_weaker_than_fgsm" in flags(checks(fgsm_acc={0.03137: 0.3}, pgd_acc={EPS: {20: 0.5}}))
    assert "pgd_not_weaker_than_fgsm" not in flags(checks(fgsm_acc={0.0314: 0.3}, pgd_acc={EPS: {20: 0.5}}))


def test_fgsm_that_never_lowers_accuracy_is_flagged():
    rows = checks(fgsm_acc={0.01: 0.9, 0.1: 0.9}, clean_acc=0.9)
    assert flags(rows) == {"fgsm_monotone_in_epsilon": 0.0, "fgsm_decreases_with_epsilon": 1.0}


def test_a_zero_gradient_on_some_examples_is_flagged():
    assert flags(checks(zero_gradient_fraction=0.5)) == {"gradient_nonzero": 1.0}
    assert flags(checks(zero_gradient_fraction=TOLERANCE)) == {"gradient_nonzero": 0.0}  # one example is tolerated
    assert flags(checks(zero_gradient_fraction=2 * TOLERANCE)) == {"gradient_nonzero": 1.0}


def test_an_unbounded_attack_or_cw_that_fails_is_flagged():
    assert flags(checks(unbounded_success=0.98, cw_success=0.99)) == {"unbounded_attack_succeeds": 1.0,
                                                                      "cw_succeeds": 0.0}
    assert flags(checks(unbounded_success=0.99, cw_success=0.5)) == {"unbounded_attack_succeeds": 0.0,
                                                                     "cw_succeeds": 1.0}


def test_cw_that_more_iterations_still_move_is_flagged():
    """Gap above 2 points plus one example's share of the checked subset: not converged."""
    assert flags(checks(cw_convergence_gap=0.03, cw_check_examples=100)) == {"cw_converged": 0.0}
    assert flags(checks(cw_convergence_gap=0.031, cw_check_examples=100)) == {"cw_converged": 1.0}
    assert flags(checks(cw_convergence_gap=0.06, cw_check_examples=25)) == {"cw_converged": 0.0}


def test_noise_stronger_than_every_gradient_attack_is_flagged():
    pgd_acc = {EPS: {20: 0.5}}
    assert flags(checks(noise_acc=(EPS, 0.4), pgd_acc=pgd_acc))["noise_not_stronger_than_gradient"] == 1.0
    # compared with the strongest gradient attack at that epsilon, APGD and FGSM included
    assert flags(checks(noise_acc=(EPS, 0.4), pgd_acc=pgd_acc, apgd_acc={EPS: 0.3}))[
        "noise_not_stronger_than_gradient"] == 0.0
    assert flags(checks(noise_acc=(EPS, 0.4), fgsm_acc={0.03137: 0.35}))["noise_not_stronger_than_gradient"] == 0.0
    assert "noise_not_stronger_than_gradient" not in flags(checks(noise_acc=(EPS, 0.4)))  # nothing to compare


def test_apgd_far_below_pgd_is_flagged():
    pgd_acc = {EPS: {7: 0.5, 20: 0.45}}
    assert flags(checks(pgd_acc=pgd_acc, apgd_acc={EPS: 0.45 - APGD_GAP - 2 * TOLERANCE}))[
        "apgd_not_stronger_than_pgd"] == 1.0
    assert flags(checks(pgd_acc=pgd_acc, apgd_acc={EPS: 0.45 - APGD_GAP}))["apgd_not_stronger_than_pgd"] == 0.0


def test_tolerance_absorbs_one_example():
    """Accuracies are k/n: a move of exactly one example is within the tolerance despite float rounding."""
    one = 1 / N
    rows = checks(fgsm_acc={0.01: 0.5, 0.02: 0.5 + one}, pgd_acc={0.02: {7: 0.3, 20: 0.3 + one}})
    assert flags(rows)["fgsm_monotone_in_epsilon"] == 0.0 and flags(rows)["pgd_monotone_in_steps"] == 0.0
    rows = checks(fgsm_acc={0.01: 0.5, 0.02: 0.5 + 2 * one}, pgd_acc={0.02: {7: 0.3, 20: 0.3 + 2 * one}})
    assert flags(rows)["fgsm_monotone_in_epsilon"] == 1.0 and flags(rows)["pgd_monotone_in_steps"] == 1.0


def test_checks_without_inputs_are_skipped():
    assert checks() == []
    assert checks(fgsm_acc={0.01: 0.5}, pgd_acc={0.03: {7: 0.4}}) == []  # one point each, no FGSM at 0.03
    assert checks(fgsm_acc={0.01: 0.0}, clean_acc=0.0) == [
        {"evaluation": "masking", "metric": "fgsm_monotone_in_epsilon", "norm": "linf", "epsilon": None,
         "steps": 1, "index": None, "value": 0.0}]  # nothing to break: no "decreases" check
    with pytest.raises(ValueError, match="tolerance"):
        masking_checks(tolerance=-1.0)


# --- on models ---

CONFIG = {
    "evaluations": "fgsm,pgd", "fgsm_epsilons": "0.02,0.05,0.1", "pgd_epsilons": "0.1", "pgd_step_fraction": 0.25,
    "pgd_steps": "3,10", "eot_samples": 1, "seed": 0, "noise_samples": 10,
}
# every attack, at budgets and iterations small enough for a unit test
EVERY_ATTACK = {**CONFIG, "evaluations": "fgsm,pgd,apgd_ce,apgd_dlr,cw_l2", "pgd_steps": "7,20", "apgd_steps": 20,
                "apgd_targets": 3, "apgd_norms": "linf", "l2_epsilons": "0.5,1.0"}  # CW at the sweeps' defaults


class HardArgmax(nn.Module):
    """Outputs a scaled one-hot of the MLP's argmax: the same decisions, zero gradient everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        return logits * 0 + 10 * F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()


class NoisyLogits(nn.Module):
    """A stochastic classifier: the MLP's logits plus N(0, 1) noise on every call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        return logits + torch.randn_like(logits)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_per_module):
    """These models are tiny: one thread is faster, and kinder to a shared machine."""


@pytest.fixture(scope="module")
def digits():
    return digits_classifier()


class CutAfterRounding(nn.Module):
    """``head(round(h).detach())``: trainable layers after a cut, the quantised-model form of masking.

    The same kind of model as the MLP, whose output has no gradient path to ``x`` at all:
    ``torch.autograd.grad`` raises "appears to not have been used in the graph" on it.
    """

    def __init__(self, model):
        super().__init__()
        self.features, self.head = model[:-1], model[-1]

    def forward(self, x):
        return self.head(torch.round(self.features(x) * 4).detach() / 4)


class HalfMasked(nn.Module):
    """The MLP, with the input gradient zeroed for the examples whose mean pixel is above the median.

    Same decisions as the MLP; half the examples cannot be moved by a gradient attack.
    """

    def __init__(self, model, threshold: float):
        super().__init__()
        self.model, self.threshold = model, threshold

    def forward(self, x):
        masked = (x.flatten(1).mean(dim=1) > self.threshold).view(-1, *([1] * (x.dim() - 1)))
        return self.model(torch.where(masked, x.detach(), x))


def masking_flags(rows):
    return flags(r for r in rows if r["evaluation"] == "masking")


def test_a_plain_mlp_passes_every_check(digits):
    model, x, y = digits
    metrics, rows = evaluate(TinyObjective(model), x, y, EVERY_ATTACK)
    assert masking_flags(rows) == {check: 0.0 for check in CHECKS}
    assert metrics["robust/masking_violations"] == 0.0 and metrics["robust/masking_checks"] == len(CHECKS)


def test_a_model_cut_from_its_input_is_flagged_not_raised(digits):
    model, x, y = digits
    metrics, rows = evaluate(TinyObjective(CutAfterRounding(model)), x, y, EVERY_ATTACK)
    assert metrics["robust/zero_gradient_fraction"] == 1.0
    found = masking_flags(rows)
    assert found["gradient_nonzero"] == 1.0 and found["unbounded_attack_succeeds"] == 1.0
    assert found["fgsm_decreases_with_epsilon"] == 1.0 and found["cw_succeeds"] == 1.0
    assert metrics["robust/masking_violations"] >= 4


def test_a_half_masked_model_is_flagged(digits):
    model, x, y = digits
    half = HalfMasked(model, float(x.flatten(1).mean(dim=1).median()))
    metrics, rows = evaluate(TinyObjective(half), x, y, CONFIG)
    plain, _ = evaluate(TinyObjective(model), x, y, CONFIG)
    assert metrics["robust/clean_acc"] == plain["robust/clean_acc"]  # the same classifier ...
    assert metrics["robust/pgd10_acc_eps0.1"] > plain["robust/pgd10_acc_eps0.1"] + 0.1  # ... that looks robust
    assert 0.4 < metrics["robust/zero_gradient_fraction"] < 0.6
    assert masking_flags(rows)["gradient_nonzero"] == 1.0
    assert plain["robust/masking_gradient_nonzero"] == 0.0


def test_a_model_with_zero_gradients_is_flagged(digits):
    model, x, y = digits
    metrics, rows = evaluate(TinyObjective(HardArgmax(model)), x, y, CONFIG)
    plain, _ = evaluate(TinyObjective(model), x, y, CONFIG)
    assert metrics["robust/clean_acc"] == plain["robust/clean_acc"]  # same classifier ...
    assert metrics["robust/fgsm_acc_eps0.1"] > plain["robust/fgsm_acc_eps0.1"] + 0.3  # ... that looks robust
    assert masking_flags(rows)["fgsm_decreases_with_epsilon"] == 1.0 and masking_flags(rows)["gradient_nonzero"] == 1.0
    assert metrics["robust/masking_fgsm_decreases_with_epsilon"] == 1.0
    assert metrics["robust/masking_violations"] >= 1.0


def test_a_stochastic_model_gets_a_wider_tolerance(digits):
    """Decisions that change between evaluations widen the tolerance beyond one example."""
    model, x, y = digits
    torch.manual_seed(0)
    metrics, _ = evaluate(TinyObjective(NoisyLogits(model)), x, y, {**CONFIG, "eot_samples": 4})
    assert metrics["robust/masking_tolerance"] > 1 / len(y)
    assert metrics["robust/masking_violations"] == 0.0
