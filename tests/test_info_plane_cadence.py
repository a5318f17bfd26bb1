"""``infoplane_every`` decides which epochs carry the information plane, and nothing else.

The measurement runs under a forked, seeded RNG, so training, the other per-epoch metrics and
the last epoch's plane are the same whatever the cadence: a sparser cadence only drops points
from the trajectories. The k-NN bias, the costliest reading, is measured after the last epoch
only, the one point the report reads it at.
"""

from __future__ import annotations

import math

import pytest
import torch

from search_spaces import get_sweep
from trainables.harness import run_trial

EPOCHS = 4
PLANE = "infoplane/izx_bits"
BIAS = "infoplane/knn_bias_bits"


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """One short vib trial per cadence, the same config and seed otherwise: {(every, bias): reports}."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = get_sweep("vib_digits").with_overrides(smoke=True).trial_configs()[0]
    config.update(epochs=EPOCHS, train_subset=200, test_subset=100, infoplane_subset=100, evaluations="fgsm",
                  eval_subset=32)
    runs = {}
    for every, bias in ((0, "last"), (1, "last"), (3, "last"), (3, "every")):
        reports = []
        run_trial({**config, "infoplane_every": every, "infoplane_bias": bias}, data_dir=str(tmp_path_factory.mktemp("data")),
                  device=torch.device("cpu"), report=lambda metrics, checkpoint: reports.append(dict(metrics)))
        runs[every, bias] = reports
    torch.set_num_threads(threads)
    return runs


def _without_plane(metrics):
    return {key: value for key, value in metrics.items() if not key.startswith("infoplane/")}


def test_the_cadence_picks_the_measured_epochs_and_the_bias_is_read_after_the_last(trials):
    assert [m["epoch"] for m in trials[1, "last"] if PLANE in m] == [1, 2, 3, 4]
    assert [m["epoch"] for m in trials[3, "last"] if PLANE in m] == [3, 4]
    assert not any(PLANE in m for m in trials[0, "last"])
    for every in (1, 3):
        assert [m["epoch"] for m in trials[every, "last"] if BIAS in m] == [EPOCHS]
    assert [m["epoch"] for m in trials[3, "every"] if BIAS in m] == [3, 4]


def test_the_cadence_changes_neither_training_nor_the_last_point(trials):
    for every, bias in ((1, "last"), (3, "last"), (3, "every")):
        assert len(trials[every, bias]) == len(trials[0, "last"]) == EPOCHS
        for epoch, (plain, measured) in enumerate(zip(trials[0, "last"], trials[every, bias]), start=1):
            a, b = _without_plane(plain), _without_plane(measured)
            assert a.keys() == b.keys(), epoch
            differing = [k for k in a if a[k] != b[k] and not (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))]
            assert not differing, f"infoplane_every={every}, infoplane_bias={bias} changed epoch {epoch}: {differing}"
    last_points = [trials[key][-1] for key in ((1, "last"), (3, "last"), (3, "every"))]
    plane = {key: value for key, value in last_points[0].items() if key.startswith("infoplane/")}
    assert BIAS in plane and all(plane == {key: last[key] for key in plane} for last in last_points[1:])
    # the bias draws last from the measurement's stream: the other readings of epoch 3 are the same without it
    sparse, with_bias = trials[3, "last"][2], trials[3, "every"][2]
    assert {key: value for key, value in with_bias.items() if key != BIAS} == sparse


def test_the_spec_validates_the_bias_cadence():
    assert get_sweep("vib_digits").with_overrides({"infoplane_bias": "every"}).trial_configs()[0]["infoplane_bias"] == "every"
    with pytest.raises(ValueError, match="infoplane_bias='first': expected one of last, every"):
        get_sweep("vib_digits").with_overrides({"infoplane_bias": "first"})
