"""The deterministic cross-entropy baseline: its loss against the formula, its gradients and representation, its
config against dib's, its sweeps, and ``ce_digits --smoke`` end to end."""

from __future__ import annotations

import pytest
import torch

from search_spaces import get_sweep
from trainables.config import ENCODER_NAMES
from trainables.objectives import build_objective, get_slice
from trainables.objectives.ce.model import CrossEntropyBaseline

CONFIG = {"objective": "ce", "encoder": "mlp", "hidden_dim": 16, "feature_dim": 8}


def make_ce(**overrides) -> CrossEntropyBaseline:
    torch.manual_seed(0)
    return build_objective({**CONFIG, **overrides}, (1, 8, 8), 10)


def tiny_batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 8, 8, generator=generator), torch.tensor([0, 3, 3, 9, 5, 1])


def by_hand(ce: CrossEntropyBaseline, x, y):
    """(logits, mean -log softmax of the label): the mlp by its layers on pixels scaled to [-1, 1]."""
    h = ((x - 0.5) / 0.5).flatten(1)
    for layer in ce.encoder.modules():
        if isinstance(layer, torch.nn.Linear):
            h = torch.relu(layer(h))
    logits = h @ ce.classifier.weight.T + ce.classifier.bias
    return logits, -logits.log_softmax(dim=-1)[torch.arange(len(y)), y].mean()


def test_the_loss_is_the_cross_entropy_of_the_linear_classifier():
    ce = make_ce()
    x, y = tiny_batch()
    terms = ce(x, y)
    logits, reference = by_hand(ce, x, y)
    assert set(terms) == {"loss", "ce"} and all(value.shape == () for value in terms.values())
    torch.testing.assert_close(terms["loss"], reference)
    torch.testing.assert_close(terms["ce"], terms["loss"])
    torch.testing.assert_close(ce.logits(x), logits)


def test_evaluate_gives_accuracy_and_cross_entropy():
    ce = make_ce().eval()
    x, y = tiny_batch()
    logits, _ = by_hand(ce, x, y)
    y = logits.argmax(dim=-1)
    y[4:] = (y[4:] + 1) % 10  # four of the six labels are the model's own guesses
    _, reference = by_hand(ce, x, y)
    metrics = ce.evaluate(x, y)
    assert set(metrics) == {"acc", "ce"}
    torch.testing.assert_close(metrics["ce"], reference)
    torch.testing.assert_close(metrics["acc"], torch.tensor(4 / 6))


def test_gradients_reach_the_encoder():
    ce = make_ce()
    ce(*tiny_batch())["loss"].backward()
    names = {name for name, _ in ce.named_parameters()}
    assert any(name.startswith("encoder.") for name in names)
    for name, parameter in ce.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("encoder", ENCODER_NAMES)
def test_the_representation_is_the_non_negative_feature_the_classifier_reads(encoder):
    ce = make_ce(encoder=encoder).eval()
    x, _ = tiny_batch()
    h = ce.representation(x)
    width = 512 if encoder == "resnet18" else CONFIG["feature_dim"]
    assert h.shape == (6, width) and (h >= 0).all()
    assert ce.classifier.in_features == width
    torch.testing.assert_close(ce.logits(x), ce.classifier(h))


def test_a_few_steps_lower_the_loss():
    ce = make_ce()
    x, y = tiny_batch()
    optimiser = torch.optim.Adam(ce.parameters(), lr=1e-2)
    first = float(ce.evaluate(x, y)["ce"])
    for _ in range(50):
        optimiser.zero_grad()
        ce(x, y)["loss"].backward()
        optimiser.step()
    assert float(ce.evaluate(x, y)["ce"]) < 0.5 * first


def test_the_config_keys_are_dibs_so_a_zoo_shares_one_backbone():
    ce, dib = get_slice("ce").config.declared(), get_slice("dib").config.declared()
    assert set(ce) == {"encoder", "hidden_dim", "feature_dim", "stem"} and set(ce) <= set(dib)
    for key in ce:
        assert ce[key].metadata["choices"] == dib[key].metadata["choices"], key
        assert type(ce[key].default) is type(dib[key].default), key


# ---- the sweeps -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ce_digits", "ce_mnist5k"])
def test_sweeps_validate_and_every_smoke_trial_builds(name):
    spec = get_sweep(name)
    spec.validate()
    assert spec.objective == "ce" and dict(spec.grid) == {"weight_decay": (0.0, 1e-4)}
    for trial in spec.with_overrides(smoke=True).trial_configs():
        assert isinstance(build_objective(trial, (1, 8, 8), 10), CrossEntropyBaseline)


def shared_values(name: str, keys: tuple[str, ...]) -> dict:
    return {key: get_sweep(name).trial_configs()[0][key] for key in keys}


@pytest.mark.parametrize(("name", "dib_name"), [("ce_digits", "dib_digits"), ("ce_mnist5k", "dib_mnist5k")])
def test_each_sweep_trains_its_dib_sweeps_backbone_with_its_optimiser(name, dib_name):
    keys = ("dataset", "encoder", "hidden_dim", "feature_dim", "batch_size", "lr", "lr_schedule", "evaluations")
    assert shared_values(name, keys) == shared_values(dib_name, keys)


def test_ce_digits_attacks_and_measures_as_dib_digits_does():
    keys = ("epochs", "eval_subset", "fgsm_epsilons", "pgd_epsilons", "l2_epsilons", "infoplane_every",
            "infoplane_subset")
    assert shared_values("ce_digits", keys) == shared_values("dib_digits", keys)
