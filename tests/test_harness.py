"""The trial loop without Ray: reporting, checkpoints, exact resume, refusals, non-finite losses."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from ray.tune import Checkpoint

import trainables.objectives
from search_spaces import get_sweep
from trainables.config import TrainingConfig
from trainables.harness import CHECKPOINT_FILE, CheckpointMismatchError, NonFiniteLossError, checkpoint_due, run_trial
from trainables.objectives.vib.model import VariationalInformationBottleneck


def _config(**changes):
    spec = get_sweep("vib_digits").with_overrides(smoke=True)
    config = spec.trial_configs()[0]
    config.update({"epochs": 4, "checkpoint_every": 1, "checkpoint_min_seconds": 0.0, "train_subset": 300,
                   "test_subset": 100, "ema_decay": 0.9, **changes})
    return config


class Recorder:
    """Collects reports; keeps a copy of every checkpoint; optionally crashes after an epoch."""

    def __init__(self, keep: Path, crash_after: int | None = None):
        self.metrics, self.checkpoints, self.keep, self.crash_after = [], {}, keep, crash_after
        self.resumed_from = None

    def __call__(self, metrics, directory):
        metrics = dict(metrics)
        if "trial/resumed_from_epoch" in metrics:
            self.resumed_from = metrics.pop("trial/resumed_from_epoch")
        self.metrics.append(metrics)
        if directory is not None:
            target = self.keep / f"epoch{metrics['epoch']}"
            shutil.copytree(directory, target)
            self.checkpoints[metrics["epoch"]] = target
        if self.crash_after == metrics["epoch"]:
            raise KeyboardInterrupt("simulated crash")


def test_reports_every_epoch_with_split_names(tmp_path):
    recorder = Recorder(tmp_path)
    run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=recorder)
    assert [m["epoch"] for m in recorder.metrics] == [1, 2, 3, 4]
    last = recorder.metrics[-1]
    for key in ("train/loss", "train/ce", "train/rate_bits", "test/acc", "test/acc_mc", "test/rate_bits", "test/izy_bits"):
        assert key in last
    assert 0.0 <= last["test/acc"] <= 1.0
    assert sorted(recorder.checkpoints) == [1, 2, 3, 4]


def test_checkpoint_every_and_last_epoch(tmp_path):
    recorder = Recorder(tmp_path)
    run_trial(_config(epochs=5, checkpoint_every=2), data_dir=tmp_path, device=torch.device("cpu"), report=recorder)
    assert sorted(recorder.checkpoints) == [2, 4, 5]


def test_checkpoints_are_spaced_by_checkpoint_min_seconds(tmp_path):
    recorder = Recorder(tmp_path)  # epochs of well under an hour: only the last is checkpointed
    run_trial(_config(checkpoint_min_seconds=3600.0), data_dir=tmp_path, device=torch.device("cpu"), report=recorder)
    assert [m["epoch"] for m in recorder.metrics] == [1, 2, 3, 4] and sorted(recorder.checkpoints) == [4]


@pytest.mark.parametrize(("epoch", "seconds", "due"), [(4, 0.5, False), (4, 1.0, True), (3, 5.0, False), (6, 1.0, True)])
def test_checkpoint_due_needs_both_the_epoch_multiple_and_the_interval(epoch, seconds, due):
    assert checkpoint_due(TrainingConfig(checkpoint_every=2, checkpoint_min_seconds=1.0), epoch, seconds) is due


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    config = _config()
    straight = Recorder(tmp_path / "a")
    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=straight)

    crashed = Recorder(tmp_path / "b", crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=crashed)
    resumed = Recorder(tmp_path / "c")
    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=resumed,
              checkpoint=Checkpoint.from_directory(crashed.checkpoints[2]))
    assert [m["epoch"] for m in resumed.metrics] == [3, 4] and resumed.resumed_from == 2
    assert straight.resumed_from is None
    assert resumed.metrics == straight.metrics[2:]


def test_checkpoint_from_another_config_is_refused(tmp_path):
    recorder = Recorder(tmp_path, crash_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=recorder)
    with pytest.raises(CheckpointMismatchError, match="beta: checkpoint 0.001 vs trial 0.5"):
        run_trial(_config(beta=0.5), data_dir=tmp_path, device=torch.device("cpu"), report=Recorder(tmp_path / "x"),
                  checkpoint=Checkpoint.from_directory(recorder.checkpoints[1]))


def test_a_config_its_declarations_refuse_stops_the_trial_before_any_data_is_loaded(tmp_path, monkeypatch):
    import trainables.harness as harness

    monkeypatch.setattr(harness, "load_dataset", lambda *args, **kwargs: pytest.fail("loaded the data"))
    with pytest.raises(ValueError, match="lr_schedule='plateu': expected one of step, cosine, plateau"):
        run_trial(_config(lr_schedule="plateu"), data_dir=tmp_path, device=torch.device("cpu"), report=Recorder(tmp_path))


class _Exploit:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_a_pickle_that_runs_code_is_refused_and_the_trial_restarts(tmp_path, capsys, caplog):
    directory = tmp_path / "evil"
    directory.mkdir()
    with open(directory / CHECKPOINT_FILE, "wb") as f:
        pickle.dump({"epoch": 1, "payload": _Exploit()}, f)
    recorder = Recorder(tmp_path / "r")
    run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=recorder,
              checkpoint=Checkpoint.from_directory(directory))
    assert "pickle code ran" not in capsys.readouterr().out
    assert "UnpicklingError" in caplog.text and "restarts from epoch 1" in caplog.text
    assert [m["epoch"] for m in recorder.metrics] == [1, 2, 3, 4] and recorder.resumed_from == 0


def _crash_after_two(tmp_path):
    """A trial stopped after epoch 2, its checkpoints laid out as Tune keeps them in the trial dir."""
    crashed = Recorder(tmp_path / "kept", crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=crashed)
    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    for epoch, directory in crashed.checkpoints.items():
        shutil.copytree(directory, trial_dir / f"checkpoint_{epoch - 1:06d}")
    return trial_dir


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    from trainables.harness import checkpoint_candidates

    trial_dir = _crash_after_two(tmp_path)
    newest = trial_dir / "checkpoint_000001" / CHECKPOINT_FILE
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    elif damage == "garbage":
        newest.write_bytes(b"not a checkpoint")
    else:
        newest.unlink()
    candidates = checkpoint_candidates(Checkpoint.from_directory(trial_dir / "checkpoint_000001"))
    assert [Path(c.path).name for c in candidates] == ["checkpoint_000001", "checkpoint_000000"]
    resumed = Recorder(tmp_path / "resumed")
    run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=resumed, checkpoint=candidates)
    assert [m["epoch"] for m in resumed.metrics] == [2, 3, 4] and resumed.resumed_from == 1
    assert "checkpoint_000001 is unusable" in caplog.text and "older checkpoint" in caplog.text
    straight = Recorder(tmp_path / "straight")
    run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=straight)
    assert resumed.metrics == straight.metrics[1:]


class _RateExplodes(VariationalInformationBottleneck):
    """A VIB whose rate term turns infinite from the second epoch on."""

    calls = 0

    def forward(self, x, y):
        terms = super().forward(x, y)
        type(self).calls += 1
        if type(self).calls > 3:  # digits subset of 300 at batch 100: 3 steps per epoch
            terms["rate_bits"] = terms["rate_bits"] * float("inf")
        return terms


def test_non_finite_term_names_epoch_and_term(tmp_path, monkeypatch):
    model_class = trainables.objectives.model_class
    monkeypatch.setattr(trainables.objectives, "model_class",
                        lambda name: _RateExplodes if name == "vib" else model_class(name))
    recorder = Recorder(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2: term\(s\) 'rate_bits'"):
        run_trial(_config(), data_dir=tmp_path, device=torch.device("cpu"), report=recorder)
    assert [m["epoch"] for m in recorder.metrics] == [1]


def _aux_recipe_runs(entropy_model: str):
    """The harness's step (one backward of ``loss + aux_loss``, aux computed before the updates) and
    two reference loops on the same batches: CompressAI's example (aux after the main step) and
    aux before the main step with a backward of its own. Returns each run's parameters."""
    from trainables.data import batch_indices, load_dataset
    from trainables.harness import build_training, train_epoch

    config = {**get_sweep("dib_digits").with_overrides(smoke=True).trial_configs()[0], "train_subset": 256,
              "batch_size": 64, "warmup_epochs": 0, "beta": 2.0, "precision": "fp32", "entropy_model": entropy_model}
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=256, test_subset=64, seed=0)

    def reference(aux_first: bool):
        def epoch(objective, optimizer, aux_optimizer, generator):
            for index in batch_indices(len(data.train_y), 64, generator=generator, device="cpu"):
                terms = objective(data.train_x[index], data.train_y[index])
                aux = objective.aux_loss() if aux_first else None
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                aux = objective.aux_loss() if aux is None else aux
                aux_optimizer.zero_grad(set_to_none=True)
                aux.backward()
                aux_optimizer.step()
        return epoch

    runs = {}
    for name, epoch in (("harness", None), ("compressai", reference(False)), ("aux first", reference(True))):
        torch.manual_seed(0)
        objective, optimizer, aux_optimizer, _, _, fast = build_training(config, data, torch.device("cpu"))
        generator = torch.Generator().manual_seed(0)
        for number in (1, 2):
            objective.start_epoch(number)
            objective.train()
            if epoch is None:
                train_epoch(objective, optimizer, aux_optimizer, None, data, config, generator, number, fast)
            else:
                epoch(objective, optimizer, aux_optimizer, generator)
        runs[name] = {k: v.detach().clone() for k, v in objective.named_parameters()}
    return runs


@pytest.mark.parametrize("entropy_model", ["factorized", "hyperprior"])
def test_one_backward_of_loss_plus_aux_trains_as_compressais_recipe(entropy_model, one_thread_per_module):
    """Every main parameter ends exactly where CompressAI's order (aux after the main step) puts it,
    since the quantiles never reach ``loss``; the quantiles end exactly where separate backwards
    with the aux loss taken before the step put them, and close to CompressAI's (their updates
    come one step earlier)."""
    runs = _aux_recipe_runs(entropy_model)
    quantiles = [name for name in runs["harness"] if name.endswith("quantiles")]
    assert quantiles and len(quantiles) < len(runs["harness"])
    for name, value in runs["harness"].items():
        assert torch.equal(value, runs["aux first"][name]), name
        if name in quantiles:
            assert torch.allclose(value, runs["compressai"][name], atol=0.05), name
        else:
            assert torch.equal(value, runs["compressai"][name]), name
