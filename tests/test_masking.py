"""Gradient-masking checks: on hand-made accuracies, on a model that masks its gradients, on one that does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tests.test_attacks import TinyObjective, digits_classifier
from trainables.evaluation import run_evaluations
from trainables.evaluation.masking import CHECKS, masking_checks

N = 400
TOLERANCE = 1 / N  # one example's share, as the suite passes for a deterministic model


def flags(rows):
    return {row["metric"]: row["value"] for row in rows}


# --- masking_checks on hand-made accuracies ---

def test_consistent_accuracies_raise_no_flag():
    rows = masking_checks({0.01: 0.8, 0.02: 0.6, 8 / 255: 0.4}, {7: 0.3, 20: 0.25}, 8 / 255, TOLERANCE, clean_acc=0.9)
    assert flags(rows) == {check: 0.0 for check in CHECKS}
    assert all(set(row) == {"evaluation", "metric", "norm", "epsilon", "steps", "index", "value"} for row in rows)
    assert all(row["evaluation"] == "masking" and row["index"] is None for row in rows)


def test_accuracy_rising_with_epsilon_is_flagged():
    rows = masking_checks({0.01: 0.6, 0.02: 0.7, 0.03: 0.5}, {}, 0.03, TOLERANCE)
    assert flags(rows) == {"fgsm_monotone_in_epsilon": 1.0}
    # a slow climb of steps each within the tolerance is still a climb
    climb = {0.01 * i: 0.5 + 0.8 * TOLERANCE * i for i in range(1, 5)}
    assert flags(masking_checks(climb, {}, 0.03, TOLERANCE))["fgsm_monotone_in_epsilon"] == 1.0
    # clean accuracy counts as epsilon 0
    assert flags(masking_checks({0.01: 0.95}, {}, 0.03, TOLERANCE, clean_acc=0.9))["fgsm_monotone_in_epsilon"] == 1.0


def test_more_steps_giving_higher_accuracy_is_flagged():
    rows = masking_checks({}, {7: 0.40, 20: 0.45}, 8 / 255, TOLERANCE)
    assert flags(rows) == {"pgd_monotone_in_steps": 1.0}
    row = rows[0]
    assert row["epsilon"] == pytest.approx(8 / 255) and row["norm"] == "linf"


def test_pgd_above_fgsm_at_the_same_epsilon_is_flagged():
    rows = masking_checks({0.0314: 0.30, 8 / 255: 0.30}, {7: 0.50, 20: 0.45}, 8 / 255 + 5e-7, TOLERANCE)
    assert flags(rows)["pgd_not_weaker_than_fgsm"] == 1.0
    [row] = [r for r in rows if r["metric"] == "pgd_not_weaker_than_fgsm"]
    assert row["steps"] == 20  # the strongest PGD is the one compared


def test_same_epsilon_as_written_in_the_metric_names():
    """The default FGSM list writes 8/255 as 0.03137 (2.5e-6 away): still PGD's epsilon; 0.0314 is not."""
    assert "pgd_not_weaker_than_fgsm" in flags(masking_checks({0.03137: 0.3}, {20: 0.5}, 8 / 255, TOLERANCE))
    assert "pgd_not_weaker_than_fgsm" not in flags(masking_checks({0.0314: 0.3}, {20: 0.5}, 8 / 255, TOLERANCE))


def test_fgsm_that_never_lowers_accuracy_is_flagged():
    rows = masking_checks({0.01: 0.9, 0.1: 0.9}, {}, 0.1, TOLERANCE, clean_acc=0.9)
    assert flags(rows) == {"fgsm_monotone_in_epsilon": 0.0, "fgsm_decreases_with_epsilon": 1.0}


def test_tolerance_absorbs_one_example():
    """Accuracies are k/n: a move of exactly one example is within the tolerance despite float rounding."""
    one = 1 / N
    rows = masking_checks({0.01: 0.5, 0.02: 0.5 + one}, {7: 0.3, 20: 0.3 + one}, 0.02, TOLERANCE)
    assert flags(rows)["fgsm_monotone_in_epsilon"] == 0.0 and flags(rows)["pgd_monotone_in_steps"] == 0.0
    rows = masking_checks({0.01: 0.5, 0.02: 0.5 + 2 * one}, {7: 0.3, 20: 0.3 + 2 * one}, 0.02, TOLERANCE)
    assert flags(rows)["fgsm_monotone_in_epsilon"] == 1.0 and flags(rows)["pgd_monotone_in_steps"] == 1.0


def test_checks_without_inputs_are_skipped():
    assert masking_checks({}, {}, 0.03, TOLERANCE) == []
    assert masking_checks({0.01: 0.5}, {7: 0.4}, 0.03, TOLERANCE) == []  # one point each, no FGSM at 0.03
    assert masking_checks({0.01: 0.0}, {}, 0.03, TOLERANCE, clean_acc=0.0) == [
        {"evaluation": "masking", "metric": "fgsm_monotone_in_epsilon", "norm": "linf", "epsilon": None,
         "steps": 1, "index": None, "value": 0.0}]  # nothing to break: no "decreases" check
    with pytest.raises(ValueError, match="tolerance"):
        masking_checks({}, {}, 0.03, -1.0)


# --- on models ---

CONFIG = {
    "evaluations": "fgsm,pgd", "fgsm_epsilons": "0.02,0.05,0.1", "pgd_epsilon": 0.1, "pgd_step": 0.025,
    "pgd_steps": "3,10", "eot_samples": 1, "seed": 0,
}


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


def test_a_plain_mlp_raises_no_flag(digits):
    model, x, y = digits
    metrics, rows = run_evaluations(TinyObjective(model), x, y, CONFIG)
    assert flags(r for r in rows if r["evaluation"] == "masking") == {check: 0.0 for check in CHECKS}
    assert metrics["robust/masking_violations"] == 0.0


def test_a_model_with_zero_gradients_is_flagged(digits):
    model, x, y = digits
    metrics, rows = run_evaluations(TinyObjective(HardArgmax(model)), x, y, CONFIG)
    plain, _ = run_evaluations(TinyObjective(model), x, y, CONFIG)
    assert metrics["robust/clean_acc"] == plain["robust/clean_acc"]  # same classifier ...
    assert metrics["robust/fgsm_acc_eps0.1"] > plain["robust/fgsm_acc_eps0.1"] + 0.3  # ... that looks robust
    assert flags(r for r in rows if r["evaluation"] == "masking")["fgsm_decreases_with_epsilon"] == 1.0
    assert metrics["robust/masking_fgsm_decreases_with_epsilon"] == 1.0
    assert metrics["robust/masking_violations"] >= 1.0


def test_a_stochastic_model_gets_a_wider_tolerance(digits):
    """Decisions that change between evaluations widen the tolerance beyond one example."""
    model, x, y = digits
    torch.manual_seed(0)
    metrics, _ = run_evaluations(TinyObjective(NoisyLogits(model)), x, y, {**CONFIG, "eot_samples": 4})
    assert metrics["robust/masking_tolerance"] > 1 / len(y)
    assert metrics["robust/masking_violations"] == 0.0
