"""SweepSpec validation, the registries, and every registered sweep's own checks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from search_spaces import SWEEPS, get_sweep, sweep_names
from search_spaces.spec import DATASETS, SweepSpec
from trainables.objectives import objective_names, slices

ALL_SWEEPS = sweep_names()


def test_dataset_list_matches_the_trial_side():
    from trainables.data import DATASETS as loadable

    assert tuple(DATASETS) == tuple(loadable)


def test_every_objective_has_a_sweep_and_declares_no_harness_key():
    from trainables.config import HARNESS_PARTS

    harness = {key for part in HARNESS_PARTS for key in part.declared()}
    assert {get_sweep(name).objective for name in ALL_SWEEPS if not get_sweep(name).is_zoo} == set(objective_names())
    for piece in slices().values():
        assert not harness & set(piece.config.declared()), piece.name


def _rules():
    """(objective, rule, violation) for every cross-key rule of every objective's declaration."""
    return [(name, rule, violation) for name, piece in sorted(slices().items())
            for rule in piece.config.RULES for violation in rule.violations]


@pytest.mark.parametrize("objective, rule, violation", _rules(),
                         ids=[f"{name}:{'+'.join(rule.keys)}:{violation}" for name, rule, violation in _rules()])
def test_every_cross_key_rule_is_enforced_on_the_driver(objective, rule, violation):
    """Each declared rule refuses its example on every sweep of its objective, naming each key it spans."""
    sweeps = [get_sweep(name) for name in ALL_SWEEPS if get_sweep(name).objective == objective]
    for spec in sweeps:
        with pytest.raises(ValueError) as refused:
            spec.with_overrides(dict(violation))
        assert str(refused.value).startswith(f"{objective}: "), refused.value
        for key in rule.keys:
            assert f"{key}=" in str(refused.value), (key, refused.value)


@pytest.mark.parametrize("part", ["AttackConfig"])
def test_every_harness_rule_is_enforced_on_the_driver(part):
    import trainables.config as config

    rules = getattr(config, part).RULES
    assert rules
    for rule in rules:
        for violation in rule.violations:
            with pytest.raises(ValueError) as refused:
                get_sweep("vib_digits").with_overrides(dict(violation))
            assert str(refused.value).startswith("harness: "), refused.value
            for key in rule.keys:
                assert f"{key}=" in str(refused.value), (key, refused.value)


def test_a_trial_parses_its_config_with_the_same_rules():
    from trainables.config import parse_trial

    trial = get_sweep("knn_ib_digits").trial_configs()[0]
    assert parse_trial(trial).own.k == trial["k"]
    with pytest.raises(ValueError, match="batch_sampler='random'"):
        parse_trial({**trial, "batch_sampler": "random"})
    with pytest.raises(ValueError, match="knn_ib: beta=1.0: expected a value in \\[0, 1\\)"):
        parse_trial({**trial, "beta": 1.0})


@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_sweep_validates_and_round_trips(name):
    spec = get_sweep(name)
    spec.validate()
    assert spec.paper and spec.description
    assert json.loads(json.dumps(spec.to_dict())) == spec.to_dict()
    configs = spec.trial_configs()
    assert len(configs) == spec.num_trials() > 0
    for config in configs:
        assert all(isinstance(v, (bool, int, float, str)) for v in config.values()), config


@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_reports_named_by_the_sweep_exist(name):
    from orchestrator.reports import resolve_reports

    assert len(resolve_reports(get_sweep(name).reports)) == len(get_sweep(name).reports)


@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_smoke_variant_is_small_and_builds_its_objective(name):
    """The smoke config builds the objective on CPU and takes one forward/backward step."""
    import torch

    from trainables.data import load_dataset
    from trainables.objectives import build_objective

    smoke = get_sweep(name).with_overrides(smoke=True)
    assert smoke.num_trials() <= 4 * max(1, len(smoke.members)) and smoke.epochs <= 3
    assert smoke.dataset in ("digits", "synthetic", "mnist5k")  # no download: generated or shipped in a package
    first_of_each = {config["objective"]: config for config in reversed(smoke.trial_configs())}
    data = load_dataset(smoke.dataset, data_dir="unused", device="cpu", train_subset=64, test_subset=64)
    for config in first_of_each.values():  # a zoo: one trial of every member
        objective = build_objective(config, data.input_shape, data.num_classes)
        terms = objective(data.train_x[:16], data.train_y[:16])
        terms["loss"].backward()
        assert torch.isfinite(terms["loss"])


def _vib(**changes) -> SweepSpec:
    return dataclasses.replace(get_sweep("vib_digits"), **changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"config": {"betta": 1.0}}, "unknown key 'betta'"),
        ({"grid": {"beta": (0.1, -1.0)}}, "beta=-1.0"),
        ({"grid": {"beta": ()}}, "grid axis 'beta' is empty"),
        ({"grid": {}}, "grid of sweep 'vib_digits' is empty"),
        ({"config": {"lr": float("nan")}}, "lr=nan"),
        ({"config": {"lr": float("inf")}}, "lr=inf"),
        ({"objective": "vibb"}, "objective 'vibb'"),
        ({"dataset": "imagenet"}, "dataset 'imagenet'"),
        ({"config": {"latent_dim": 2.5}}, "latent_dim=2.5"),
        ({"config": {"ema_decay": 1.0}}, "ema_decay=1.0"),
        ({"epochs": 0}, "epochs 0"),
        ({"seeds": ()}, "seeds"),
        ({"mode": "maximise"}, "mode 'maximise'"),
        ({"ranges": {"beta": ("loguniform", 0.0, 1.0)}}, "ranges['beta']"),
        ({"ranges": {"lr": ("uniform", 0.1, 1.0)}}, "ranges key 'lr'"),
        ({"config": {"epochs": 3}}, "config key 'epochs'"),
    ],
)
def test_validation_names_field_and_value(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _vib(**changes).validate()


def test_overrides_scalar_list_smoke_epochs_and_seeds():
    spec = get_sweep("vib_digits")
    fixed = spec.with_overrides({"beta": 0.5})
    assert "beta" not in fixed.grid and fixed.base_config()["beta"] == 0.5
    swept = spec.with_overrides({"lr": [1e-3, 1e-2]}, epochs=3, seeds=2)
    assert swept.grid["lr"] == (1e-3, 1e-2) and swept.epochs == 3 and swept.seeds == (0, 1)
    assert swept.num_trials() == spec.num_trials() * 2 * 2
    smoke = spec.with_overrides(smoke=True)
    assert smoke.epochs == spec.smoke["epochs"] and smoke.grid["beta"] == spec.smoke_grid["beta"]
    with pytest.raises(ValueError, match="--seeds 0"):
        spec.with_overrides(seeds=0)
    with pytest.raises(ValueError, match="'seed' cannot be set"):
        spec.with_overrides({"seed": 3})


def test_unknown_sweep_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean vib_digits"):
        get_sweep("vib_digit")


def test_registry_refuses_duplicates():
    from search_spaces import register_sweep

    with pytest.raises(ValueError, match="registered twice"):
        register_sweep(SWEEPS["vib_digits"])


# MNIST's standard L-inf budgets are 0.1-0.3 (Madry et al. 2018: 0.3); CIFAR's 8/255 = 0.031 says little there.
MNIST_LINF_RANGE = (0.05, 0.5)
LINF_ATTACKS = {"fgsm": ("fgsm_epsilons",), "pgd": ("pgd_epsilons",), "apgd_ce": ("pgd_epsilons",),
                "apgd_dlr": ("pgd_epsilons",)}


@pytest.mark.parametrize("name", [n for n in ALL_SWEEPS if get_sweep(n).dataset == "mnist"])
def test_every_mnist_sweep_attacks_at_mnist_budgets(name):
    """Every L-inf epsilon an MNIST sweep attacks at lies in [0.05, 0.5], and the largest is at least 0.1."""
    spec = get_sweep(name)
    config = spec.base_config()
    keys = {key for attack in spec.evaluations for key in LINF_ATTACKS.get(attack, ())}
    epsilons = [float(e) for key in keys for e in str(config[key]).split(",")]
    low, high = MNIST_LINF_RANGE
    assert all(low <= e <= high for e in epsilons), (name, epsilons)
    assert not epsilons or max(epsilons) >= 0.1, (name, epsilons)
