"""The harness attacks and measures the information plane on a class-stratified test subset,
the same for every trial seed, even when the test split is sorted by class."""

from __future__ import annotations

import torch

import trainables.harness as harness
from search_spaces import get_sweep
from trainables.data import Dataset


_real_load_dataset = harness.load_dataset


def _class_sorted(*args, **kwargs) -> Dataset:
    """The real dataset with its test split sorted by class, where ``test_x[:n]`` holds the first classes only."""
    data = _real_load_dataset(*args, **kwargs)
    order = data.test_y.argsort(stable=True)
    data.test_x, data.test_y = data.test_x[order], data.test_y[order]
    return data


def _measured(tmp_path, monkeypatch, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def attacks(model, x, y, attack_config, seed):
        seen["attacks"] = x.clone(), y.clone()
        return {}, []

    def plane(model, x, y, **kwargs):
        seen["infoplane"] = x.clone(), y.clone()
        return {}

    monkeypatch.setattr(harness, "load_dataset", _class_sorted)
    monkeypatch.setattr(harness, "run_evaluations", attacks)
    monkeypatch.setattr(harness, "info_plane", plane)
    config = get_sweep("vib_digits").with_overrides(smoke=True).trial_configs()[0]
    config.update({"epochs": 1, "seed": seed, "train_subset": 200, "eval_subset": 40, "infoplane_every": 1,
                   "infoplane_subset": 95})
    harness.run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=lambda metrics, directory: None)
    return seen


def test_attacks_and_information_plane_see_every_class_whatever_the_trial_seed(tmp_path, monkeypatch):
    first = _measured(tmp_path / "a", monkeypatch, seed=0)
    other = _measured(tmp_path / "b", monkeypatch, seed=5)
    for key, size in (("attacks", 40), ("infoplane", 95)):
        (x, y), (other_x, other_y) = first[key], other[key]
        counts = torch.bincount(y, minlength=10)
        assert len(x) == len(y) == size and counts.max() - counts.min() <= 1, (key, counts.tolist())
        assert torch.equal(x, other_x) and torch.equal(y, other_y)  # the same images, not only the same labels
