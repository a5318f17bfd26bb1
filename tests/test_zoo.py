"""The IB zoo: a sweep whose trials are of several objectives (search_spaces/zoo.py, SweepSpec.members), its
expansion, overrides and validation, the searcher that hands its trials to Tune, and an interrupted zoo resumed
through the CLI with every trial exactly once."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from orchestrator.sweep import main
from orchestrator.tuner import TrialListSearcher, param_space, zoo_trials
from search_spaces import get_sweep
from search_spaces.spec import Member, SweepSpec, declared_keys
from tests.helpers import interrupt_after, mlflow_runs, read_tables
from trainables.config import parse_trial
from trainables.objectives import objective_names

ZOO = get_sweep("zoo_digits")


def test_a_zoo_is_the_union_of_its_members_grids_with_seeds_innermost():
    configs = ZOO.trial_configs()
    per_member = {m.objective: len(m.grid.get("beta", (None,))) for m in ZOO.members}
    assert ZOO.num_trials() == len(configs) == sum(per_member.values()) * len(ZOO.seeds) == 51
    assert [c["objective"] for c in configs[:4]] == ["ce", "ce", "ce", "dib"]
    assert [c["seed"] for c in configs[:4]] == [0, 1, 2, 0]
    for member in ZOO.members:
        mine = [c for c in configs if c["objective"] == member.objective]
        assert sorted({c.get("beta") for c in mine}, key=str) == sorted(set(member.grid.get("beta", (None,))), key=str)
    assert set(ZOO.axes()) == {"objective", "beta"} and ZOO.axes()["objective"] == ("ce", "dib", "vib", "knn_ib", "ceb")


def test_every_trial_carries_exactly_its_own_objectives_keys_and_parses():
    harness = set(declared_keys("ce")) - set(get_sweep("ce_digits").base_config()) | set(ZOO.base_config())
    for config in ZOO.trial_configs():
        own = set(declared_keys(config["objective"]))
        assert set(config) - {"objective", "dataset", "epochs", "seed", "evaluations"} <= own, config["objective"]
        assert set(config) >= own - harness
        parsed = parse_trial(config)  # the worker's own check, with every rule
        assert parsed.objective == config["objective"]
    vib = next(c for c in ZOO.trial_configs() if c["objective"] == "vib")
    assert "entropy_model" not in vib and vib["hidden_dim"] == 256 and vib["latent_dim"] == 64


def test_the_members_share_one_backbone_and_the_shared_config():
    by_objective = {c["objective"]: c for c in ZOO.trial_configs()}
    assert {c["hidden_dim"] for c in by_objective.values()} == {256}
    widths = {o: c.get("latent_dim") if o in ("vib", "ceb") else c["feature_dim"] for o, c in by_objective.items()}
    assert set(widths.values()) == {64}, widths
    for key in ("batch_size", "batch_sampler", "lr", "lr_schedule", "fgsm_epsilons", "pgd_epsilons", "infoplane_subset"):
        assert len({c[key] for c in by_objective.values()}) == 1, key


def test_set_filters_members_and_routes_keys_to_those_that_declare_them():
    spec = ZOO.with_overrides({"objective": ["ce", "vib"], "beta": 0.01, "lr": 3e-3}, seeds=1)
    assert [m.objective for m in spec.members] == ["ce", "vib"] and spec.num_trials() == 2
    ce, vib = spec.trial_configs()
    assert vib["beta"] == 0.01 and "beta" not in ce and ce["lr"] == vib["lr"] == 3e-3
    swept = ZOO.with_overrides({"objective": "dib", "beta": [1.0, 4.0]})
    assert swept.num_trials() == 2 * 3 and swept.axes() == {"objective": ("dib",), "beta": (1.0, 4.0)}
    smoke = ZOO.with_overrides(smoke=True)
    assert smoke.num_trials() == 5 and {c["hidden_dim"] for c in smoke.trial_configs()} == {32}
    assert next(c for c in smoke.trial_configs() if c["objective"] == "knn_ib")["decoder_epochs"] == 1
    # the members kept first, so smoke settings that only a dropped member reads are no error
    assert ZOO.with_overrides({"objective": ["ce"]}, smoke=True).num_trials() == 1


@pytest.mark.parametrize("sets, message", [
    ({"objective": "foo"}, "--set objective='foo': expected members of zoo 'zoo_digits': ce, dib, vib, knn_ib, ceb"),
    ({"bogus": 1}, "no member of zoo 'zoo_digits' declares 'bogus'"),
    ({"objective": "ce", "beta": 0.1}, "no member of zoo 'zoo_digits' declares 'beta' (members: ce)"),
    ({"beta": -1.0}, "beta"),
])
def test_bad_sets_on_a_zoo_are_one_line_errors(sets, message):
    with pytest.raises(ValueError, match=None) as error:
        ZOO.with_overrides(sets)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("change, message", [
    ({"members": (Member("vib"), Member("vib"))}, "expected each objective once"),
    ({"members": (Member("nope"),)}, "member objective 'nope'"),
    ({"members": (Member("vib", {"entropy_model": "factorized"}),)}, "member 'vib' config: unknown key 'entropy_model'"),
    ({"members": (Member("vib", grid={"beta": ()}),)}, "member 'vib' grid axis 'beta' is empty"),
    ({"config": {"beta": 0.1}}, "unknown key 'beta' for the members' shared config"),
    ({"members": ()}, "a zoo has objective='zoo' and at least one member"),
    ({"objective": "vib"}, "a zoo has objective='zoo'"),
])
def test_a_bad_zoo_declaration_names_the_member_and_key(change, message):
    with pytest.raises(ValueError) as error:
        dataclasses.replace(ZOO, **change).validate()
    assert message in str(error.value)


def test_cli_refuses_optuna_on_a_zoo(capsys):
    assert main(["zoo_digits", "--search", "optuna", "--trials", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --search optuna: zoo_digits is a zoo, whose trials are its members' grids; use --search grid")


def test_the_searcher_suggests_each_trial_once_in_order_and_its_position_survives_a_restore(tmp_path):
    trials = zoo_trials(ZOO)
    assert len(trials) == ZOO.num_trials()
    assert trials[0] == {"objective": "ce", "seed": 0, "encoder": "mlp", "hidden_dim": 256, "feature_dim": 64,
                         "stem": "cifar"}  # the member's own keys, its defaults among them
    base = param_space(ZOO, "grid")
    merged = [{**base, **trial} for trial in trials]
    assert merged == ZOO.trial_configs()  # Tune's merge of space and suggestion is each trial's own config
    searcher = TrialListSearcher(trials, metric="test/acc", mode="max")
    first = [searcher.suggest(str(i)) for i in range(3)]
    searcher.save(str(tmp_path / "state"))
    again = TrialListSearcher([], metric="test/acc", mode="max")
    again.restore(str(tmp_path / "state"))
    rest = [again.suggest(str(i)) for i in range(len(trials) - 3)]
    assert first + rest == trials and again.suggest("x") == TrialListSearcher.FINISHED


ARGS = ["zoo_digits", "--smoke", "--set", 'objective=["ce", "dib", "vib"]', "--epochs", "3",
        "--max-concurrent", "1"]  # one trial at a time: the searcher has trials left to hand out at the Ctrl-C


@pytest.mark.slow
def test_an_interrupted_zoo_resumes_with_every_trial_once(workspace, ray_session):
    """Ctrl-C after the first finished trial, then the printed --resume: the searcher does not hand out again the
    trials it gave before, and each child run is its trial's objective."""
    code, output, command = interrupt_after(workspace, ARGS, "[1/3]")
    assert code == 130, output
    (run_dir,) = workspace.run_dirs("zoo_digits")
    assert json.loads((run_dir / "sweep.json").read_text())["state"] == "interrupted"

    assert main(shlex.split(command)[3:]) == 0
    epochs, final = read_tables(run_dir)
    assert sorted(final["config/objective"]) == ["ce", "dib", "vib"] and set(final["status"]) == {"TERMINATED"}
    assert len(epochs) == 9 and not epochs.duplicated(["trial_id", "epoch"]).any()
    parents, children = mlflow_runs(workspace.tracking_uri, "zoo_digits")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and parents[0].data.tags["objective"] == "zoo"
    assert sorted(c.data.tags["objective"] for c in children) == ["ce", "dib", "vib"]
    for child in children:
        assert child.data.params["objective"] == child.data.tags["objective"]
        assert ("beta" in child.data.params) == (child.data.tags["objective"] != "ce")
    assert (run_dir / "reports" / "zoo_accuracy.png").stat().st_size > 0


def test_every_member_is_a_registered_supervised_objective():
    for name in ("zoo_digits", "zoo_mnist5k"):
        spec = get_sweep(name)
        assert isinstance(spec, SweepSpec) and spec.is_zoo and spec.seeds == (0, 1, 2)
        assert {m.objective for m in spec.members} == {"ce", "dib", "vib", "knn_ib", "ceb"} <= set(objective_names())
