"""The knn_ib objective (Kirsch, Lyle and Gal): its loss, config checks, decoders, and a whole trial."""

from __future__ import annotations

import math
import re
import statistics

import pytest
import torch

from search_spaces import get_sweep
from trainables.config import parse_trial
from trainables.data import class_balanced_batch_indices, load_dataset
from trainables.estimators import class_conditional_knn_entropy, knn_entropy, nats_to_bits
from trainables.knn_bias import knn_entropy_bias_bits
from trainables.harness import run_trial
from trainables.objectives import build_objective
from trainables.objectives.base import Objective


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smoke_config(**changes):
    config = get_sweep("knn_ib_digits").with_overrides(smoke=True).trial_configs()[0]
    return {**config, **changes}


def digits(train_subset=300):
    return load_dataset("digits", data_dir="unused", device="cpu", train_subset=train_subset, test_subset=100)


def balanced_batch(data, size=200, seed=0):
    index = class_balanced_batch_indices(data.train_y, size, generator=torch.Generator().manual_seed(seed))[0]
    return data.train_x[index], data.train_y[index]


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_loss_falls_over_20_steps(beta):
    torch.manual_seed(0)
    data = digits()
    objective = build_objective(smoke_config(beta=beta), data.input_shape, data.num_classes)
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
    x, y = balanced_batch(data)
    losses = []
    for _ in range(20):
        loss = objective(x, y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # measured: beta 0 from -1.2 to about -2.2 nats; a step of noise is about 0.1
    assert sum(losses[-5:]) / 5 < losses[0] - 0.3, losses


def test_terms_are_the_papers_loss_on_the_same_noise():
    data = digits()
    objective = build_objective(smoke_config(beta=0.3), data.input_shape, data.num_classes)
    x, y = balanced_batch(data, 100)
    torch.manual_seed(1)
    terms = objective(x, y)
    torch.manual_seed(1)
    z = objective._with_noise(objective.latent(x))  # the same noise draw
    h_z = knn_entropy(z)
    h_z_given_y = class_conditional_knn_entropy(z, y, num_classes=10)
    torch.testing.assert_close(terms["loss"], h_z_given_y + (0.3 - 1) * h_z)
    torch.testing.assert_close(terms["h_z_bits"], nats_to_bits(h_z.detach()))
    torch.testing.assert_close(terms["h_z_given_y_bits"], nats_to_bits(h_z_given_y.detach()))
    assert terms["rate_bits"] == terms["h_z_bits"]
    # the decoder is not trained through this loss
    terms["loss"].backward()
    assert all(p.grad is None for p in objective.decoder.parameters())
    assert objective.projection[-1].weight.grad is not None


def test_evaluate_reports_the_knn_bias_beside_h_z_without_touching_the_global_stream():
    """``h_z_knn_bias_bits`` is knn_entropy_bias_bits of the same noisy batch, with a generator of
    its own seeded by the trial's seed: the global stream moves only by the evaluation noise."""
    data = digits()
    objective = build_objective(smoke_config(seed=3), data.input_shape, data.num_classes).eval()
    x, y = data.test_x, data.test_y
    torch.manual_seed(1)
    with torch.no_grad():
        terms = objective.evaluate(x, y)
    after_evaluate = torch.get_rng_state()
    torch.manual_seed(1)
    with torch.no_grad():
        z = objective._with_noise(objective.latent(x))  # the same noise draw
    assert torch.equal(torch.get_rng_state(), after_evaluate)
    expected = knn_entropy_bias_bits(z, 1, generator=torch.Generator().manual_seed(3))
    assert terms["h_z_knn_bias_bits"].item() == pytest.approx(expected.item(), abs=1e-5)
    assert terms["rate_bits"] == nats_to_bits(knn_entropy(z))
    # K = 32, N = 100, the untrained encoder: 3.3 bits (the plug-in b(Sigma_hat) it replaced read 8.1); not another seed's draw
    assert terms["h_z_knn_bias_bits"].item() > 0
    other = knn_entropy_bias_bits(z, 1, generator=torch.Generator().manual_seed(4))
    assert terms["h_z_knn_bias_bits"].item() != pytest.approx(other.item(), abs=1e-5)


def test_noise_switch():
    data = digits()
    x, y = balanced_batch(data, 100)
    quiet = build_objective(smoke_config(noise=False), data.input_shape, data.num_classes)
    assert quiet(x, y)["loss"] == quiet(x, y)["loss"]
    noisy = build_objective(smoke_config(noise=True), data.input_shape, data.num_classes)
    assert noisy(x, y)["loss"] != noisy(x, y)["loss"]


@pytest.mark.parametrize("changes, message", [
    ({"beta": 1.0}, "knn_ib: beta=1.0: expected a value in [0, 1)"),
    ({"beta": -0.1}, "knn_ib: beta=-0.1: expected a value in [0, 1)"),
    ({"noise": "yes"}, "knn_ib: noise='yes': expected true or false"),
    ({"batch_sampler": "random", "batch_size": 200}, "knn_ib: batch_sampler='random', batch_size=200, k=1: expected "
                                                     "batch_sampler='class_balanced' and batch_size // classes > k"),
    ({"batch_size": 19}, "knn_ib: batch_sampler='class_balanced', batch_size=19, k=1: expected"),
    ({"batch_size": 30, "k": 3}, "knn_ib: batch_sampler='class_balanced', batch_size=30, k=3: expected"),
    ({"k": 0}, "knn_ib: k=0: expected a value > 0"),
])
def test_config_errors_name_the_value(changes, message):
    """The declaration refuses them when the trial is parsed (on the driver and in the trial)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_trial(smoke_config(**changes))


def test_the_class_balanced_rule_accepts_more_than_k_per_class():
    assert parse_trial(smoke_config(batch_size=20, k=1)).own.k == 1  # 2 per class, k = 1
    assert parse_trial(smoke_config(batch_size=40, k=3)).own.k == 3


@pytest.mark.parametrize("beta", [1.0, 1.5, -0.5])
def test_sweep_validation_keeps_beta_in_the_unit_interval(beta):
    with pytest.raises(ValueError, match=f"beta={beta!r}"):
        get_sweep("knn_ib_digits").with_overrides({"beta": [0.5, beta]})
    spec = get_sweep("knn_ib_digits").with_overrides({"beta": [0.0, 0.99], "noise": False})  # the no-noise ablation
    assert spec.config["noise"] is False and spec.grid["beta"] == (0.0, 0.99)


def test_a_whole_trial_fits_decoders_before_the_attacks(tmp_path):
    """Synthetic clusters: decoders near 100%, FGSM through the fitted residual decoder, info plane logged."""
    config = smoke_config(dataset="synthetic", epochs=2, beta=0.4, eval_subset=500, infoplane_every=1,
                          infoplane_bias="every", infoplane_subset=200, decoder_epochs=10, decoder_width=64,
                          train_subset=0, test_subset=0)
    reports = []
    torch.manual_seed(0)
    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=lambda m, d: reports.append(m))
    assert [m["epoch"] for m in reports] == [1, 2]
    last = reports[-1]
    assert last["decoder/gmm_acc"] > 0.9 and last["decoder/resfc_acc"] > 0.9
    # the attacks ran on the residual decoder (all 500 test points): the same clean accuracy
    assert last["robust/clean_acc"] == pytest.approx(last["decoder/resfc_acc"])
    assert last["robust/fgsm_acc_eps0.2"] <= last["robust/clean_acc"]
    for metrics in reports:
        assert {"infoplane/izx_bits", "infoplane/hyz_bits", "infoplane/rate_bits", "infoplane/knn_bias_bits", "test/acc",
                "test/rate_bits", "test/h_z_knn_bias_bits", "train/h_z_given_y_bits"} <= set(metrics)
        assert math.isfinite(metrics["test/h_z_knn_bias_bits"]) and math.isfinite(metrics["infoplane/knn_bias_bits"])
    assert last["infoplane/hyz_bits"] < math.log2(10)


class ConstantLoss(Objective):
    """A loss that never improves (or, with ``falling``, always does), to watch the plateau schedule."""

    def __init__(self, trial, input_shape, num_classes, falling=False):
        super().__init__(trial, input_shape, num_classes)
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.falling, self.epoch = falling, 0

    def start_epoch(self, epoch):
        self.epoch = epoch

    def forward(self, x, y):
        value = 10.0 - self.epoch if self.falling else 1.0
        return {"loss": 0 * self.weight + value}

    @torch.no_grad()
    def evaluate(self, x, y):
        return {"acc": torch.tensor(0.0)}


@pytest.mark.parametrize("falling, expected", [(False, [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4]), (True, [1e-3] * 7)])
def test_plateau_schedule_cuts_the_lr_after_patience_epochs(falling, expected, tmp_path, monkeypatch):
    import trainables.harness as harness

    monkeypatch.setattr(harness, "build_objective", lambda c, shape, n: ConstantLoss(c, shape, n, falling))
    config = smoke_config(epochs=7, lr=1e-3, lr_schedule="plateau", lr_decay=0.5, lr_patience=2, evaluations="",
                          infoplane_every=0)
    reports = []
    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=lambda m, d: reports.append(m))
    assert [m["lr"] for m in reports] == pytest.approx(expected)


class FittedAfterTraining(ConstantLoss):
    """A classifier that exists only once ``final_evaluations`` has run, as knn_ib's decoder."""

    def __init__(self, trial, input_shape, num_classes):
        super().__init__(trial, input_shape, num_classes)
        self.head = torch.nn.Linear(64, num_classes)
        self.fitted = False

    def logits(self, x):
        if not self.fitted:
            raise RuntimeError("attacked before final_evaluations fitted the decoder")
        return self.head(x.flatten(1))

    def final_evaluations(self, data):
        self.fitted = True
        return {"decoder/fitted": 1.0}, []


def test_the_harness_fits_decoders_before_it_attacks(tmp_path, monkeypatch):
    import trainables.harness as harness

    monkeypatch.setattr(harness, "build_objective", FittedAfterTraining)
    config = smoke_config(epochs=1, evaluations="fgsm", infoplane_every=0)
    reports = []
    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=lambda m, d: reports.append(m))
    assert reports[-1]["decoder/fitted"] == 1.0 and "robust/fgsm_acc_eps0.2" in reports[-1]


# ---- the report: H(Z) beside its k-NN bias ---------------------------------------------------

def knn_ib_fake_sweep(directory, *, bias=True):
    """tests/test_reports.py's fake sweep as a knn_ib sweep: decoder accuracies and, with ``bias``,
    test/h_z_knn_bias_bits = latent_dim / 2 + seed beside its test/rate_bits."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.test_reports import SWEEP, write_fake_sweep

    write_fake_sweep(directory, sweep={**SWEEP, "name": "knn_ib_digits", "objective": "knn_ib", "reports": ["knn_decoders"]})
    table = pq.read_table(directory / "final.parquet")
    frame = table.to_pandas()
    frame["decoder/resfc_acc"] = frame["test/acc"]
    frame["decoder/gmm_acc"] = frame["test/acc"] - 0.01
    if bias:
        frame["test/h_z_knn_bias_bits"] = frame["config/latent_dim"] / 2 + frame["config/seed"]
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   directory / "final.parquet")
    assert json.loads(table.schema.metadata[b"sweep"])["objective"] == "knn_ib"
    return directory


def test_knn_decoders_report_shows_h_z_with_its_knn_bias(tmp_path, monkeypatch):
    import trainables.objectives.knn_ib.report as module
    from orchestrator.reports import build_reports, load_results
    from tests.test_reports import PNG_SIGNATURE, fake_rate, markdown_table

    directory = knn_ib_fake_sweep(tmp_path / "results")
    text = build_reports(directory).read_text()
    assert "## k-NN H(Z) vs beta, with the estimator's bias" in text
    assert (directory / "reports" / "knn_entropy_vs_beta.png").read_bytes().startswith(PNG_SIGNATURE)
    rows = markdown_table(text, "Final k-NN H(Z) on the test batches")
    assert rows[0] == ["latent_dim", "beta", "`test/rate_bits`", "`test/h_z_knn_bias_bits`", "`rate_bits - h_z_knn_bias_bits`"]
    # latent_dim = 2, beta = 0: H(Z) = 8 + 0.1 seed + 1/3, bias = 1 + seed; seeds 0 and 1
    raw = [fake_rate(0.0, 2, seed) for seed in (0, 1)]
    assert rows[1][:2] == ["2", "beta=0"]
    assert rows[1][2].startswith(f"{statistics.mean(raw):.4g} ± ") and rows[1][3] == "1.5 ± 0.71 (2)"
    assert rows[1][4].startswith(f"{statistics.mean(raw) - 1.5:.4g} ± ")

    figures = {}
    monkeypatch.setattr(module, "save_figure", lambda figure, path: figures.setdefault(path.name, figure))
    module.knn_decoders(load_results(directory), tmp_path)
    lines = figures["knn_entropy_vs_beta.png"].axes[0].get_lines()
    hollow = [line for line in lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 2  # one corrected line per latent_dim
    assert float(hollow[0].get_ydata()[0]) == pytest.approx(statistics.mean(raw) - 1.5)


def test_knn_decoders_report_without_the_bias_has_no_entropy_section(tmp_path):
    from orchestrator.reports import build_reports

    text = build_reports(knn_ib_fake_sweep(tmp_path / "results", bias=False)).read_text()
    assert "Decoder test accuracy vs beta" in text and "k-NN H(Z) vs beta" not in text
    assert not (tmp_path / "results" / "reports" / "knn_entropy_vs_beta.png").exists()


def test_knn_decoders_report_flags_a_code_shrunk_into_the_noise(tmp_path):
    """The Gaussian decoder more than 0.2 ahead of the residual one at a beta'' is named; within 0.01 it is not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.reports import build_reports

    quiet = build_reports(knn_ib_fake_sweep(tmp_path / "quiet")).read_text()
    assert "trained on Z = f(x) + zero-entropy noise" in quiet and "shrunk into the noise**" not in quiet

    directory = knn_ib_fake_sweep(tmp_path / "shrunk")
    table = pq.read_table(directory / "final.parquet")
    frame = table.to_pandas()
    top = frame["config/beta"] == frame["config/beta"].max()
    frame.loc[top, "decoder/resfc_acc"] = 0.1  # the residual decoder at chance at the largest beta'' only
    frame.loc[top, "decoder/gmm_acc"] = 0.6
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   directory / "final.parquet")
    text = build_reports(directory).read_text()
    (line,) = [line for line in text.splitlines() if "shrunk into the noise**" in line]
    beta = f"beta={frame['config/beta'].max():g}"
    assert beta in line and "(residual 0.100, Gaussian 0.600)" in line
    assert line.count("residual 0.100") == frame.loc[top, "config/latent_dim"].nunique()  # one per latent_dim


def test_knn_decoders_report_has_no_noise_reading_for_the_no_noise_ablation(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.reports import build_reports

    directory = knn_ib_fake_sweep(tmp_path / "results")
    table = pq.read_table(directory / "final.parquet")
    frame = table.to_pandas().assign(**{"config/noise": False})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   directory / "final.parquet")
    text = build_reports(directory).read_text()
    assert "Decoder test accuracy vs beta" in text and "zero-entropy noise (std 0.24" not in text
