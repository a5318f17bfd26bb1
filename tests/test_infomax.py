"""The InfoMax objective (Tschannen et al. 2020): views, terms, evaluation, per-epoch probes, the linear probe."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from search_spaces.spec import HARNESS_DEFAULTS, objective_defaults
from trainables.data import load_dataset
from trainables.estimators import infonce, nwj
from trainables.evaluation.probes import linear_probe
from trainables.objectives import build_objective
from trainables.objectives.infomax.model import CRITICS, ENCODERS, ESTIMATORS, InfoMax, condition_due, halves

SMALL = {"encoder_depth": 2, "encoder_hidden": 16, "separable_hidden": 16, "separable_embed": 8, "concat_hidden": 16,
         "mi_batch_size": 32, "condition_batch": 16, "epochs": 4}
PERCENTILE_KEYS = [f"conditioning/log_condition_number_p{p:02d}" for p in (5, 25, 50, 75, 95)]


def config(**overrides):
    return {**HARNESS_DEFAULTS, **objective_defaults("infomax"), "objective": "infomax", "dataset": "digits",
            **SMALL, **overrides}


def make(**overrides) -> InfoMax:
    torch.manual_seed(0)
    return build_objective(config(**overrides), (1, 8, 8), 10)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", data_dir="/nonexistent-data-dir", device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch and one BLAS thread: scikit-learn's L-BFGS slows down tenfold on a shared, busy machine otherwise."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def test_halves_are_the_top_and_bottom_rows():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    top, bottom = halves(x)
    assert top.shape == bottom.shape == (2, 32)
    torch.testing.assert_close(top[1], x[1, 0, :4].flatten())
    torch.testing.assert_close(bottom[1], x[1, 0, 4:].flatten())
    mnist_top, mnist_bottom = halves(torch.zeros(3, 1, 28, 28))
    assert mnist_top.shape == mnist_bottom.shape == (3, 392)
    odd_top, odd_bottom = halves(torch.zeros(1, 3, 5, 2))
    assert odd_top.shape == (1, 12) and odd_bottom.shape == (1, 18)
    with pytest.raises(ValueError, match=r"views need images \(B, C, H, W\)"):
        halves(torch.zeros(4, 64))


@pytest.mark.parametrize("estimator, critic, encoder",
                         list(itertools.product(["infonce", "nwj"], ["bilinear", "separable", "concat"], ["realnvp", "mlp"])))
def test_every_grid_configuration_gives_the_bound_of_its_critic(estimator, critic, encoder, digits):
    objective = make(estimator=estimator, critic=critic, encoder=encoder)
    x, y = digits.train_x[:24], digits.train_y[:24]
    terms = objective(x, y)
    assert set(terms) == {"loss", "mi_nats", "mi_bits"}
    top, bottom = halves(x)
    bound = {"infonce": infonce, "nwj": nwj}[estimator]
    expected = bound(objective.critic(objective.g1(top), objective.g2(bottom)))
    torch.testing.assert_close(terms["mi_nats"], expected.detach())
    torch.testing.assert_close(terms["loss"], -expected)
    torch.testing.assert_close(terms["mi_bits"], expected.detach() / math.log(2))
    terms["loss"].backward()
    assert all(p.grad is not None for p in objective.g1.parameters())


@pytest.mark.parametrize("estimator, critic, encoder", [("infonce", "bilinear", "realnvp"), ("nwj", "separable", "mlp"),
                                                        ("infonce", "concat", "mlp")])
def test_loss_falls_over_20_steps(estimator, critic, encoder, digits):
    objective = make(estimator=estimator, critic=critic, encoder=encoder)
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    x, y = digits.train_x[:64], digits.train_y[:64]
    losses = []
    for _ in range(20):
        loss = objective(x, y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_evaluation_averages_estimates_of_exactly_mi_batch_size_pairs(digits):
    objective = make(mi_batch_size=32).eval()
    x, y = digits.test_x[:100], digits.test_y[:100]
    metrics = objective.evaluate(x, y)
    starts = [0, 32, 64, 68]  # the last chunk ends at the batch's end
    expected = torch.stack([objective.bound(x[s : s + 32])[0] for s in starts]).mean()
    torch.testing.assert_close(metrics["mi_nats"], expected)
    assert set(metrics) == {"mi_nats", "mi_bits"}
    with pytest.raises(ValueError, match="an evaluation batch of 20 test examples is smaller than mi_batch_size 32"):
        objective.evaluate(x[:20], y[:20])


def test_epoch_metrics_probe_every_epoch_and_conditioning_on_schedule(digits):
    objective = make(condition_every=3, epochs=4, batch_size=100).eval()
    first = objective.epoch_metrics(digits, 1)
    assert first["train/steps"] == math.ceil(1347 / 100)  # 14 steps per epoch
    assert 0.5 < first["probe/test_acc"] <= 1 and 0.5 < first["probe/train_acc"] <= 1
    values = [first[k] for k in PERCENTILE_KEYS]
    assert values == sorted(values)
    # near-identity init (std 1e-4): the Jacobian is the identity up to ~1e-4, log cond ~ 0
    assert 0 <= values[0] and values[-1] < 1e-2
    assert not any(k in objective.epoch_metrics(digits, 2) for k in PERCENTILE_KEYS)
    assert all(k in objective.epoch_metrics(digits, 3) for k in PERCENTILE_KEYS)
    assert all(k in objective.epoch_metrics(digits, 4) for k in PERCENTILE_KEYS)  # the last epoch
    assert [condition_due(e, 3, 7) for e in range(1, 8)] == [True, False, True, False, False, True, True]


def test_probe_subset_and_representation(digits):
    objective = make(probe_train_subset=200).eval()
    torch.testing.assert_close(objective.representation(digits.test_x[:10], batch_size=3),
                               objective.g1(halves(digits.test_x[:10])[0]))
    assert 0 < objective.epoch_metrics(digits, 2)["probe/train_acc"] <= 1


def test_adversarial_terms_reach_only_their_own_player(digits):
    objective = make(adversarial=True, adversarial_weight=2.0, estimator="infonce", critic="bilinear")
    x, y = digits.train_x[:40], digits.train_y[:40]
    terms = objective(x, y)
    assert {"classifier_ce", "uniform_ce", "classifier_acc"} <= set(terms)
    torch.testing.assert_close(terms["loss"].detach(), -terms["mi_nats"] + terms["classifier_ce"] + 2.0 * terms["uniform_ce"])
    terms["loss"].backward()
    classifier_grad = objective.classifier.weight.grad.clone()
    encoder_grad = next(objective.g1.parameters()).grad.clone()

    # the classifier's gradient is that of its own cross-entropy on the true labels alone
    objective.zero_grad()
    z1 = objective.g1(halves(x)[0])
    torch.nn.functional.cross_entropy(objective.classifier(z1), y).backward()
    torch.testing.assert_close(objective.classifier.weight.grad, classifier_grad)

    # the encoder's gradient is that of -I_EST + weight * CE(uniform) alone
    objective.zero_grad()
    mi, z1 = objective.bound(x)
    uniform_ce = -torch.log_softmax(objective.classifier(z1), dim=1).mean()
    (-mi + 2.0 * uniform_ce).backward()
    torch.testing.assert_close(next(objective.g1.parameters()).grad, encoder_grad)
    assert "classifier_acc" in objective.eval().evaluate(digits.test_x[:64], digits.test_y[:64])


@pytest.mark.parametrize("key, value, message", [
    ("estimator", "infonse", "infomax: estimator='infonse': expected one of infonce, nwj"),
    ("critic", "mlp", "infomax: critic='mlp': expected one of bilinear, separable, concat"),
    ("encoder", "glow", "infomax: encoder='glow': expected one of realnvp, mlp"),
    ("encoder_depth", 0, "infomax: encoder_depth=0: expected a value > 0"),
    ("mi_batch_size", 1, "infomax: mi_batch_size=1: expected a value >= 2"),
    ("adversarial", "yes", "infomax: adversarial='yes': expected true or false"),
    ("eval_batch_size", 16, "infomax: eval_batch_size=16, mi_batch_size=32: expected eval_batch_size >= mi_batch_size"),
])
def test_bad_config_names_the_key_and_value(key, value, message):
    """Parsing the trial (as build_objective does) refuses it; the model itself never re-validates."""
    with pytest.raises(ValueError, match=message):
        make(**{key: value})


def test_the_model_builds_every_choice_the_config_declares():
    from trainables.objectives.infomax.config import CRITIC_NAMES, ENCODER_NAMES, ESTIMATOR_NAMES, InfomaxConfig

    assert (tuple(ESTIMATORS), tuple(CRITICS), tuple(ENCODERS)) == (ESTIMATOR_NAMES, CRITIC_NAMES, ENCODER_NAMES)
    declared = InfomaxConfig.declared()
    assert [declared[key].metadata["choices"] for key in ("estimator", "critic", "encoder")] == [
        ESTIMATOR_NAMES, CRITIC_NAMES, ENCODER_NAMES]


def test_linear_probe_separates_separable_classes():
    generator = np.random.default_rng(0)
    centres = 5 * generator.normal(size=(3, 4))
    labels = np.repeat(np.arange(3), 40)
    features = centres[labels] + 0.1 * generator.normal(size=(120, 4))
    result = linear_probe(torch.tensor(features[::2]), torch.tensor(labels[::2]), features[1::2], labels[1::2])
    assert result == {"train_acc": 1.0, "test_acc": 1.0}
    # shuffled labels: chance level on the test half
    shuffled = generator.permutation(labels)
    assert linear_probe(features[::2], shuffled[::2], features[1::2], shuffled[1::2])["test_acc"] < 0.6


@pytest.mark.parametrize("args, message", [
    ((np.zeros((4, 2)), np.arange(4), np.zeros((3, 5)), np.arange(3)), "needs \\(N, D\\) and \\(M, D\\) features"),
    ((np.zeros((4, 2)), np.arange(3), np.zeros((3, 2)), np.arange(3)), "one label per example"),
    ((np.zeros((4, 2)), np.zeros(4), np.zeros((3, 2)), np.arange(3)), "at least two classes"),
    ((np.full((4, 2), np.nan), np.arange(4), np.zeros((3, 2)), np.arange(3)), "NaN or infinite"),
])
def test_linear_probe_errors(args, message):
    with pytest.raises(ValueError, match=message):
        linear_probe(*args)


def test_a_trial_reports_the_report_inputs_every_epoch(digits, tmp_path):
    """Two epochs through the harness (no Ray): every metric the conditioning report and Tune need."""
    from trainables.harness import run_trial

    reports = []
    run_trial(config(epochs=2, batch_size=128, seed=0), data_dir=str(tmp_path), device=torch.device("cpu"),
              report=lambda metrics, checkpoint: reports.append(metrics))
    assert [r["epoch"] for r in reports] == [1, 2]
    for metrics in reports:
        for key in ["test/mi_bits", "train/mi_bits", "probe/test_acc", "train/steps", *PERCENTILE_KEYS]:
            assert math.isfinite(metrics[key]), key
    assert reports[1]["train/steps"] == 2 * math.ceil(1347 / 128)
