"""The information plane: its measurement against closed forms, the hooks, the harness cadence, the report."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from search_spaces import get_sweep  # noqa: E402
from trainables.data import load_dataset  # noqa: E402
from trainables.estimators import ZERO_ENTROPY_STD, knn_entropy, nats_to_bits, zero_entropy_noise  # noqa: E402
from trainables.knn_bias import knn_entropy_bias_bits  # noqa: E402
from trainables.evaluation.info_plane import held_out_cross_entropy_bits, info_plane  # noqa: E402
from trainables.harness import run_trial  # noqa: E402
from trainables.objectives import build_objective  # noqa: E402

CONFIG = {"seed": 0, "eval_batch_size": 1000}
BITS = math.log(2)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Identity:
    """A deterministic 'encoder' whose representation is its input, (N, d)."""

    def representation(self, x):
        return x

    def evaluate(self, x, y):
        raise NotImplementedError


class GaussianPosterior(Identity):
    """A stochastic encoder: z = x + s * eps, with h(Z | X = x) = d/2 log(2 pi e s^2)."""

    def __init__(self, s):
        self.s = s

    def representation_sample(self, x):
        d = x.shape[1]
        return x + self.s * torch.randn_like(x), torch.full((len(x),), 0.5 * d * math.log(2 * math.pi * math.e * self.s**2))


def gaussian_inputs(n=2000, d=3, scale=1.0, seed=0):
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), torch.randint(0, 10, (n,))


def test_deterministic_encoder_plus_zero_entropy_noise_matches_the_closed_form():
    """X ~ N(0, s^2 I_3); Z = X + zero-entropy noise ~ N(0, (s^2 + 1/(2 pi e)) I), I(X;Z) = h(Z).

    Tolerance 0.3 bits: the estimator's largest deviation over 20 seeds for a 3-d Gaussian at
    N = 2000 was 0.16 nats = 0.23 bits (tests/test_knn_entropy.py).
    """
    x, y = gaussian_inputs(scale=2.0, seed=1)  # seed 0 would draw X = the noise's own eps (CONFIG's seed), Z = (2 + s) eps
    exact = 0.5 * 3 * math.log(2 * math.pi * math.e * (4.0 + ZERO_ENTROPY_STD**2)) / BITS
    metrics = info_plane(Identity(), x, y, **CONFIG)
    assert set(metrics) == {"infoplane/izx_bits", "infoplane/izx_floor_bits", "infoplane/knn_bias_bits",
                            "infoplane/hyz_bits"}  # no rate
    assert metrics["infoplane/izx_bits"] == pytest.approx(exact, abs=0.3)
    assert metrics["infoplane/izx_floor_bits"] == pytest.approx(0.0, abs=0.3)  # zero-entropy noise: h = 0
    assert metrics["infoplane/knn_bias_bits"] == pytest.approx(0.0, abs=0.3)  # a 3-d Gaussian: no bias to speak of


def test_the_bias_is_measured_on_z_and_corrects_an_anisotropic_latent():
    """X with variances spread over 4 decades, d = 32, N = 450 (the digits' subset): the k-NN
    I(X;Z) = h(Z) is about 40 bits too high, the isotropic floor says 4; izx - knn_bias is within
    2.5 bits of the exact h(Z) (tests/test_knn_entropy.py: largest error 1.6 bits over 20 seeds)."""
    d = 32
    variances = torch.logspace(-2, 2, d)
    x = torch.randn(450, d, generator=torch.Generator().manual_seed(1)) * variances.sqrt()  # not the noise's seed 0
    metrics = info_plane(Identity(), x, torch.arange(450) % 10, **CONFIG)
    exact = 0.5 * (variances + ZERO_ENTROPY_STD**2).log().sum().item() / BITS + 0.5 * d * math.log2(2 * math.pi * math.e)
    assert metrics["infoplane/izx_bits"] - exact > 30 and metrics["infoplane/izx_floor_bits"] < 6
    corrected = metrics["infoplane/izx_bits"] - metrics["infoplane/knn_bias_bits"]
    assert corrected == pytest.approx(exact, abs=2.5)


def test_the_bias_draws_last_so_the_other_readings_are_unchanged():
    """The same numbers as the measurement without the bias: Z's noise, then the floor's, then
    the reference Gaussian, all from the global stream forked and seeded with the trial's seed."""
    x, y = gaussian_inputs(n=300, d=4)
    metrics = info_plane(Identity(), x, y, **CONFIG)
    with torch.random.fork_rng():
        torch.manual_seed(CONFIG["seed"])
        z = x + zero_entropy_noise(x.shape)
        floor = knn_entropy(zero_entropy_noise(x.shape))
        bias = knn_entropy_bias_bits(z)
    assert metrics["infoplane/izx_bits"] == float(nats_to_bits(knn_entropy(z)))
    assert metrics["infoplane/izx_floor_bits"] == float(nats_to_bits(floor))
    assert metrics["infoplane/knn_bias_bits"] == float(bias)


def test_stochastic_encoder_subtracts_its_conditional_entropy():
    """Z = X + s eps with X ~ N(0, m^2 I): I(X;Z) = d/2 log2((m^2 + s^2) / s^2)."""
    x, y = gaussian_inputs(scale=3.0)
    exact = 0.5 * 3 * math.log2((9.0 + 0.25) / 0.25)
    assert info_plane(GaussianPosterior(0.5), x, y, **CONFIG)["infoplane/izx_bits"] == pytest.approx(exact, abs=0.3)


def test_conditional_entropy_bound_against_known_label_noise():
    """Labels y = i mod 10 on N(0, I_4) points; classes 0-3 moved 20 apart, 4-9 left together.

    Independent of Z: H(Y|Z) = log2 10. Classes 0-3 separated: Z names one of 5 groups and the
    shared group (probability 0.6) leaves 6 labels equally likely: H(Y|Z) = 0.6 log2 6 = 1.55 bits.
    With labels 4-9 merged into one, Z determines Y: H(Y|Z) = 0. Tolerances: the held-out
    regression's excess over H(Y|Z) for 500 fitting points.
    """
    x, _ = gaussian_inputs(n=1000, d=4)
    labels = torch.arange(1000) % 10
    assert held_out_cross_entropy_bits(x, labels, seed=0) == pytest.approx(math.log2(10), abs=0.05)
    separated = x + 20.0 * torch.nn.functional.one_hot(labels, 10)[:, :4].float()
    assert held_out_cross_entropy_bits(separated, labels, seed=0) == pytest.approx(0.6 * math.log2(6), abs=0.15)
    assert held_out_cross_entropy_bits(separated, labels.clamp(max=4), seed=0) < 0.05


def test_the_measurement_repeats_and_leaves_the_training_rng_alone():
    x, y = gaussian_inputs()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = info_plane(Identity(), x, y, **CONFIG)
    assert torch.equal(torch.get_rng_state(), state)
    assert info_plane(Identity(), x, y, **CONFIG) == first


def test_no_representation_no_plane_and_too_few_examples():
    class Nothing(Identity):
        def representation(self, x):
            return None

    x, y = gaussian_inputs(n=10)
    assert info_plane(Nothing(), x, y, **CONFIG) == {}
    with pytest.raises(ValueError, match="at least 4 test examples with labels, got 3 images and 3 labels"):
        info_plane(Identity(), x[:3], y[:3], **CONFIG)


def test_vib_and_dib_hooks():
    data = load_dataset("digits", data_dir="unused", device="cpu", train_subset=64, test_subset=64)
    vib = build_objective(get_sweep("vib_digits").trial_configs()[0], data.input_shape, 10).eval()
    with torch.no_grad():
        mean, std = vib.encoder(data.test_x)
        z, conditional = vib.representation_sample(data.test_x)
        expected = torch.distributions.Normal(mean, std).entropy().sum(-1)
    torch.testing.assert_close(conditional, expected, rtol=1e-5, atol=1e-3)
    assert z.shape == mean.shape and not torch.equal(z, mean)
    torch.testing.assert_close(vib.representation(data.test_x), mean)
    metrics = info_plane(vib, data.test_x, data.test_y, seed=0, eval_batch_size=30)
    assert {"infoplane/izx_bits", "infoplane/izx_floor_bits", "infoplane/knn_bias_bits", "infoplane/hyz_bits",
            "infoplane/rate_bits", "infoplane/izx_lower_bits", "infoplane/izx_upper_bits"} == set(metrics)
    assert math.isnan(metrics["infoplane/knn_bias_bits"])  # 64 examples cannot give a 256-d covariance
    # Poole et al.'s bounds on the same draws: InfoNCE's lower one cannot pass log2 of the subset's size
    assert 0 < metrics["infoplane/izx_lower_bits"] <= math.log2(64) < metrics["infoplane/izx_upper_bits"]

    dib = build_objective(get_sweep("dib_digits").trial_configs()[0], data.input_shape, 10).eval()
    with torch.no_grad():
        h_hat = dib.representation(data.test_x)
    torch.testing.assert_close(h_hat, torch.round(dib.features(data.test_x)))
    assert dib.representation_sample(data.test_x) is None and dib.posterior(data.test_x) is None
    assert "infoplane/izx_lower_bits" not in info_plane(dib, data.test_x, data.test_y, seed=0, eval_batch_size=30)


@pytest.mark.parametrize("every, measured", [(2, [2, 3]), (1, [1, 2, 3]), (0, [])])
def test_the_harness_measures_every_n_epochs_and_the_last(every, measured, tmp_path):
    config = get_sweep("vib_digits").with_overrides(smoke=True).trial_configs()[0]
    config.update(epochs=3, train_subset=200, test_subset=100, infoplane_every=every, infoplane_subset=100,
                  evaluations="")
    reports = []
    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=lambda m, d: reports.append(m))
    assert [m["epoch"] for m in reports if "infoplane/izx_bits" in m] == measured
    assert all("infoplane/rate_bits" in m for m in reports if "infoplane/izx_bits" in m)


def test_spec_validates_the_harness_keys():
    with pytest.raises(ValueError, match="infoplane_every=-1: expected a value >= 0"):
        get_sweep("vib_digits").with_overrides({"infoplane_every": -1})
    with pytest.raises(ValueError, match="infoplane_subset=0: expected a value > 0"):
        get_sweep("vib_digits").with_overrides({"infoplane_subset": 0})
    with pytest.raises(ValueError, match="lr_schedule='plateu': expected one of step, cosine, plateau"):
        get_sweep("vib_digits").with_overrides({"lr_schedule": "plateu"})


# ---- the report ------------------------------------------------------------------------------

def add_info_plane_columns(directory, *, rate=True, bias=True, bounds=False):
    """Give the fake sweep of tests/test_reports.py information-plane columns (beta compresses); with
    ``bounds``, Poole et al.'s bounds around the corrected reading at latent_dim 2 and 3 bits above it at 8."""
    table = pq.read_table(directory / "epochs.parquet")
    frame = table.to_pandas()
    frame["infoplane/izx_bits"] = 10.0 / (1 + 10 * frame["config/beta"]) + frame["epoch"]
    frame["infoplane/hyz_bits"] = 3.0 / frame["epoch"] + frame["config/beta"]
    frame["infoplane/izx_floor_bits"] = 0.5 * frame["config/latent_dim"]
    if bias:
        frame["infoplane/knn_bias_bits"] = 0.75 * frame["config/latent_dim"] + 0.5 * frame["config/seed"]
    if rate:
        frame["infoplane/rate_bits"] = 2 * frame["infoplane/izx_bits"]
    if bounds:
        corrected = frame["infoplane/izx_bits"] - frame["infoplane/knn_bias_bits"]
        frame["infoplane/izx_lower_bits"] = corrected + np.where(frame["config/latent_dim"] == 8, 3.0, -1.0)
        frame["infoplane/izx_upper_bits"] = frame["infoplane/izx_lower_bits"] + 2.0
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   directory / "epochs.parquet")


def test_info_plane_report_is_added_to_any_sweep_that_logged_it(tmp_path):
    from orchestrator.reports import build_reports
    from tests.test_reports import PNG_SIGNATURE, markdown_table, write_fake_sweep

    directory = write_fake_sweep(tmp_path / "results")
    assert "Information plane" not in build_reports(directory).read_text()
    add_info_plane_columns(directory)
    text = build_reports(directory).read_text()
    assert "## Information plane" in text
    for name in ("info_plane.png", "info_plane_rate.png"):
        assert (directory / "reports" / name).read_bytes().startswith(PNG_SIGNATURE)
    rows = markdown_table(text, "The last measured epoch")
    assert rows[0] == ["latent_dim", "beta", "`infoplane/izx_bits`", "`infoplane/izx_floor_bits`", "`infoplane/knn_bias_bits`",
                       "`izx_bits - knn_bias_bits`", "`infoplane/hyz_bits`", "`infoplane/rate_bits`"]
    # beta = 0, latent_dim = 2: izx = 10 + 3 at the last epoch for both seeds, bias 1.5 + 0.5 seed; the ERROR trial is left out
    assert rows[1][:6] == ["2", "CE (beta=0)", "13 ± 0 (2)", "1 ± 0 (2)", "1.75 ± 0.35 (2)", "11.25 ± 0.35 (2)"]
    assert rows[-1][:2] == ["8", "beta=1"] and rows[-1][2].endswith("(2)")
    assert "hollow marker at I(X;Z) - bias" in text


def _drawn_figures(monkeypatch, directory):
    """Build the info_plane report of ``directory`` and return its figures by file name, unsaved."""
    import orchestrator.reports.info_plane as module
    from orchestrator.reports import load_results

    figures = {}
    monkeypatch.setattr(module, "save_figure", lambda figure, path: figures.setdefault(path.name, figure))
    module.info_plane(load_results(directory), directory)
    return figures


def test_info_plane_figure_marks_each_last_point_minus_its_knn_bias(tmp_path, monkeypatch):
    from tests.test_reports import write_fake_sweep

    directory = write_fake_sweep(tmp_path / "results")
    add_info_plane_columns(directory)
    figures = _drawn_figures(monkeypatch, directory)

    def hollow(figure):
        return sorted((round(float(line.get_xdata()[0]), 6), round(float(line.get_ydata()[0]), 6))
                      for panel in figure.axes for line in panel.get_lines() if line.get_markerfacecolor() == "white")

    points = hollow(figures["info_plane.png"])
    # one per trajectory (16, the ERROR trial's one epoch too, like its dot): izx - bias at its last epoch, at its
    # H(Y|Z) = 1 for beta = 0 (izx 13 there): latent_dim 2, seed 1: bias 1.5 + 0.5; latent_dim 8, seed 0: bias 6
    assert len(points) == 16 and (11.0, 1.0) in points and (7.0, 1.0) in points
    assert not hollow(figures["info_plane_rate.png"])  # the objective's own rate is not a k-NN reading here


def test_info_plane_report_brackets_the_gaussian_encoders_bounds_and_names_readings_outside_them(tmp_path, monkeypatch):
    from orchestrator.reports import build_reports
    from tests.test_reports import markdown_table, write_fake_sweep

    directory = write_fake_sweep(tmp_path / "results")
    add_info_plane_columns(directory, bounds=True)
    text = build_reports(directory).read_text()
    rows = markdown_table(text, "The last measured epoch")
    assert rows[0][5:8] == ["`izx_bits - knn_bias_bits`", "`infoplane/izx_lower_bits`", "`infoplane/izx_upper_bits`"]
    assert rows[1][5:8] == ["11.25 ± 0.35 (2)", "10.25 ± 0.35 (2)", "12.25 ± 0.35 (2)"]  # latent_dim 2, beta 0: inside
    flagged = next(line for line in text.splitlines() if "lies outside the bounds" in line)
    assert flagged.count("latent_dim 8") == 4 and "latent_dim 2" not in flagged  # 3 bits below at every beta of 8
    assert "latent_dim 8, CE (beta=0): 6.75 bits against [9.75, 11.75]; latent_dim 8, beta=0.001: " in flagged
    lines = [line for panel in _drawn_figures(monkeypatch, directory)["info_plane.png"].axes for line in panel.get_lines()]
    brackets = [line for line in lines if line.get_linewidth() == 4]  # one per trajectory, [lower, upper], none cut
    assert len(brackets) == 16 and all(np.ptp(line.get_xdata()) == 2.0 for line in brackets)
    assert sum(line.get_marker() == "|" for line in lines) == 32 and not any(line.get_marker() == ">" for line in lines)


def test_info_plane_report_of_a_sweep_without_the_bias_column(tmp_path, monkeypatch):
    from orchestrator.reports import build_reports
    from tests.test_reports import markdown_table, write_fake_sweep

    directory = write_fake_sweep(tmp_path / "results")
    add_info_plane_columns(directory, bias=False)
    text = build_reports(directory).read_text()
    assert markdown_table(text, "The last measured epoch")[0][2:4] == ["`infoplane/izx_bits`", "`infoplane/izx_floor_bits`"]
    assert "knn_bias_bits" not in text
    figures = _drawn_figures(monkeypatch, directory)
    assert not [line for panel in figures["info_plane.png"].axes for line in panel.get_lines()
                if line.get_markerfacecolor() == "white"]


def test_info_plane_report_without_the_columns_says_so(tmp_path):
    from orchestrator.reports import load_results
    from orchestrator.reports.info_plane import info_plane as report
    from tests.test_reports import write_fake_sweep

    sections = report(load_results(write_fake_sweep(tmp_path / "results")), tmp_path)
    assert "no information plane" in sections[0].paragraphs[0] and not sections[0].figures
    sweep = json.loads(pq.read_schema(tmp_path / "results" / "final.parquet").metadata[b"sweep"])
    assert "info_plane" not in sweep["reports"]


def test_an_upper_bound_far_past_the_readings_is_cut_at_the_panels_edge_with_an_arrow():
    import matplotlib.pyplot as plt
    from orchestrator.reports.info_plane import _draw_brackets

    figure, panel = plt.subplots()
    panel.plot([10.0, 30.0], [1.0, 1.0])  # the k-NN readings span 10-30 bits
    panel.autoscale()
    _draw_brackets(panel, [(8.8, 5.9e8, 1.0, "C0"), (12.0, 20.0, 0.5, "C1")])
    assert panel.get_xlim()[0] < 8.8 and 30 < panel.get_xlim()[1] < 40  # the 5.9e8-bit bound does not set the scale
    markers = [line.get_marker() for line in panel.get_lines()]
    assert markers.count(">") == 1 and markers.count("|") == 3
    plt.close(figure)
