"""SimCLR with an entropy penalty (Zhang et al., II.D): terms, rate weighting, learning, evaluation."""

import math
import pytest
import torch

from trainables.config import parse_trial
from trainables.data import load_dataset
from trainables.estimators import nt_xent
from trainables.evaluation.probes import linear_probe
from trainables.objectives import build_objective
from trainables.objectives.simclr_dib.model import SimCLRDeterministicIB

CONFIG = {"objective": "simclr_dib", "seed": 0, "epochs": 3, "eval_batch_size": 1000, "beta": 0.1, "temperature": 0.5,
          "encoder": "small_conv", "stem": "cifar", "feature_dim": 16, "entropy_model": "factorized",
          "warmup_epochs": 0, "projection_dim": 8, "crop_scale_min": 0.5, "jitter_strength": 0.5, "probe_every": 2}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", data_dir="unused", device="cpu", train_subset=200, test_subset=100)


def make(**overrides) -> SimCLRDeterministicIB:
    torch.manual_seed(0)
    return SimCLRDeterministicIB(parse_trial({**CONFIG, **overrides}), (1, 8, 8), 10)


def test_registry_builds_it_and_forward_returns_named_scalar_terms(digits):
    model = build_objective(CONFIG, (1, 8, 8), 10)
    assert isinstance(model, SimCLRDeterministicIB) and model.name == "simclr_dib"
    terms = model(digits.train_x[:16], digits.train_y[:16])
    assert set(terms) == {"loss", "nt_xent", "rate_bits", "bits_per_dim"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    assert terms["loss"].requires_grad and not terms["nt_xent"].requires_grad


def test_loss_is_nt_xent_plus_two_beta_bits_per_dim_and_ignores_labels(digits):
    model = make(beta=0.3)
    x, y = digits.train_x[:16], digits.train_y[:16]
    torch.manual_seed(1)
    terms = model(x, y)
    torch.testing.assert_close(terms["loss"].detach(), terms["nt_xent"] + 2 * 0.3 * terms["bits_per_dim"])
    torch.manual_seed(1)
    shuffled = model(x, y.roll(1))
    torch.testing.assert_close(shuffled["loss"], terms["loss"])


def test_the_encoder_gets_the_rate_gradient_only_when_beta_is_positive_and_after_warmup(digits):
    x, y = digits.train_x[:16], digits.train_y[:16]

    def encoder_gradient(model, epoch=1):
        model.start_epoch(epoch)
        model.zero_grad()
        torch.manual_seed(2)
        model(x, y)["loss"].backward()
        return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])

    def contrastive_only_gradient(model):
        model.zero_grad()
        torch.manual_seed(2)
        views = model._views(x, None)
        z1, z2 = model.projection(torch.round(model.features(views)) + model.features(views) - model.features(views).detach()).chunk(2)
        nt_xent(z1, z2, model.temperature).backward()
        return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])

    plain = make(beta=0.0)
    torch.testing.assert_close(encoder_gradient(plain), contrastive_only_gradient(plain))
    warming = make(beta=1.0, warmup_epochs=2)
    torch.testing.assert_close(encoder_gradient(warming, epoch=2), contrastive_only_gradient(warming))
    priced = make(beta=1.0, warmup_epochs=2)
    assert not torch.allclose(encoder_gradient(priced, epoch=3), contrastive_only_gradient(priced))


def test_the_loss_falls_over_20_steps(digits):
    torch.set_num_threads(1)
    model = make(beta=0.05, temperature=0.2)
    aux = model.aux_parameters()
    main = [p for p in model.parameters() if all(p is not q for q in aux)]
    optimiser, aux_optimiser = torch.optim.Adam(main, lr=3e-3), torch.optim.Adam(aux, lr=1e-3)
    x, y = digits.train_x[:64], digits.train_y[:64]
    torch.manual_seed(0)
    losses = []
    for _ in range(20):
        loss = model(x, y)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        aux_optimiser.zero_grad()
        model.aux_loss().backward()
        aux_optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1, losses


def test_evaluate_is_deterministic_and_leaves_the_global_rng_alone(digits):
    model = make().eval()
    state = torch.get_rng_state()
    first = model.evaluate(digits.test_x, digits.test_y)
    assert torch.equal(torch.get_rng_state(), state)
    second = model.evaluate(digits.test_x, digits.test_y)
    assert set(first) == {"rate_bits", "bits_per_dim", "active_dims", "nt_xent", "contrastive_acc"}
    for name in first:
        torch.testing.assert_close(first[name], second[name])
    assert 0 <= float(first["contrastive_acc"]) <= 1
    assert set(model.evaluate(digits.test_x[:1], digits.test_y[:1])) == {"rate_bits", "bits_per_dim", "active_dims"}


def test_the_linear_probe_runs_when_due_and_gives_accuracies(digits):
    model = make().eval()
    skipped = model.epoch_metrics(digits, 1)  # not due: NaN, since Tune wants test/acc in every report
    assert set(skipped) == {"train/acc", "test/acc"} and all(math.isnan(v) for v in skipped.values())
    for epoch in (2, 3):  # every probe_every = 2 epochs, and the last (epochs = 3)
        metrics = model.epoch_metrics(digits, epoch)
        assert set(metrics) == {"train/acc", "test/acc"} and all(0 <= v <= 1 for v in metrics.values())
    metrics, rows = model.final_evaluations(digits)
    assert set(metrics) == {"probe/rounded_train_acc", "probe/rounded_test_acc"} and rows == []


def test_linear_probe_separates_separable_features_and_checks_shapes():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    features = torch.nn.functional.one_hot(labels, 3).float() * 5 + 0.1 * torch.randn(60, 3, generator=generator)
    assert linear_probe(features[:40], labels[:40], features[40:], labels[40:]) == {"train_acc": 1.0, "test_acc": 1.0}
    with pytest.raises(ValueError, match="features"):
        linear_probe(features[:40], labels[:40], features[40:, :2], labels[40:])


@pytest.mark.parametrize("key, value, message", [
    ("temperature", 0.0, "temperature=0.0: expected a value > 0"),
    ("beta", -1.0, "beta=-1.0: expected a value >= 0"),
    ("crop_scale_min", 1.5, "crop_scale_min=1.5: expected a value in \\(0, 1\\]"),
    ("probe_every", 0, "probe_every=0: expected a value > 0"),
    ("encoder", "vit", "encoder='vit': expected one of resnet18, small_conv"),
])
def test_bad_config_values_are_named_by_the_declaration(key, value, message):
    """The declaration (SimclrDibConfig) refuses them when the trial's config is parsed, before a model is built."""
    with pytest.raises(ValueError, match=f"^simclr_dib: {message}$"):
        parse_trial({**CONFIG, key: value})
