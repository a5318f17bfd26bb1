"""The report panels of the simclr_dib and hybrid slices, built from fake results written by orchestrator.results."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from orchestrator.reports import build_reports, load_results  # noqa: E402
from orchestrator.results import write_results  # noqa: E402
from trainables.objectives.hybrid.report import FID_SKIPPED, _images  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _sweep(name, objective, axes, reports):
    return {"name": name, "objective": objective, "dataset": "digits", "axes": axes, "reports": reports,
            "metric": "test/acc", "mode": "max", "description": "fake", "paper": "fake"}


def write_simclr(directory):
    final, epochs = [], []
    for beta in (0.0, 0.5):
        for temperature in (0.1, 0.5):
            for seed in (0, 1):
                trial = f"t_{beta}_{temperature}_{seed}"
                config = {"config/beta": beta, "config/temperature": temperature, "config/seed": seed}
                accuracy = 0.9 - 0.1 * beta + 0.01 * seed
                metrics = {"test/acc": accuracy, "train/acc": accuracy + 0.02, "test/rate_bits": 100 - 100 * beta,
                           "probe/rounded_test_acc": accuracy - 0.05}
                final.append({"trial_id": trial, "status": "TERMINATED", "error": None, "epochs_completed": 2,
                              **config, "config/objective": "simclr_dib", **metrics})
                epochs += [{"trial_id": trial, "epoch": e, **config, **metrics} for e in (1, 2)]
    write_results(directory, epochs, final, _sweep("simclr_dib_digits", "simclr_dib", ["beta", "temperature"],
                                                    ["linear_evaluation", "accuracy_vs_beta", "rate_vs_beta"]))
    return directory


def write_hybrid(directory, *, interpolation=True):
    final, epochs, rows = [], [], []
    shape = (2, 3, 1, 4, 4)
    for alpha in (0.1, 0.9):
        for seed in (0, 1):
            trial = f"h_{alpha}_{seed}"
            config = {"config/alpha": alpha, "config/temperature": 0.1, "config/seed": seed}
            metrics = {"test/mse": 0.01 * (1 - alpha) + 0.001 * seed, "test/sse": 0.64 * (1 - alpha), "test/acc": 0.8 + 0.1 * (1 - alpha),
                       "train/acc": 0.95, "probe/first_half_test_acc": 0.7, "probe/second_half_test_acc": 0.6, "test/info_nce": 5.0}
            final.append({"trial_id": trial, "status": "TERMINATED", "error": None, "epochs_completed": 2, **config,
                          "config/fid_weights": "", **metrics})
            epochs += [{"trial_id": trial, "epoch": e, **config, **metrics} for e in (1, 2)]
            if interpolation:
                rows += [{"trial_id": trial, **config, "evaluation": "interpolation", "metric": "grid_shape", "index": i,
                          "value": float(v)} for i, v in enumerate(shape)]
                for m, mode in enumerate(("whole", "first_half", "second_half")):
                    # pixel value = step / 2 for the whole latent, a tenth of that for the first half: a known movement
                    values = np.broadcast_to(np.arange(3).reshape(1, 3, 1, 1, 1) / 2 * (1, 0.1, 0.5)[m], shape).flatten()
                    rows += [{"trial_id": trial, **config, "evaluation": "interpolation", "metric": mode, "index": i,
                              "value": float(v)} for i, v in enumerate(values)]
    write_results(directory, epochs, final, _sweep("hybrid_digits", "hybrid", ["alpha", "temperature"],
                                                    ["hybrid_tradeoff", "interpolation"]), rows)
    return directory


def test_linear_evaluation_uses_table_one_layout(tmp_path):
    report = build_reports(write_simclr(tmp_path / "run")).read_text()
    assert "Linear evaluation (Zhang et al., Table I layout)" in report
    assert "**`simclr_dib_digits`, temperature=0.1: linear evaluation per beta**" in report
    assert "| SimCLR (beta=0) | 92.50 ± 0.71 (2) | 90.50 ± 0.71 (2) | 100 ± 0 (2) | 85.50 ± 0.71 (2) |" in report
    assert "| Compressive (beta=0.5) | 87.50 ± 0.71 (2) | 85.50 ± 0.71 (2) | 50 ± 0 (2) | 80.50 ± 0.71 (2) |" in report
    assert "| SimCLR (beta=0) | 71.97 | 71.04 |" in report  # the paper's Table I
    assert "Highest mean test accuracy: 90.50% at temperature=0.1, beta=0" in report
    assert (tmp_path / "run" / "reports" / "accuracy_vs_beta.png").read_bytes().startswith(PNG)


def test_hybrid_tradeoff_tables_figures_and_fid_sentence(tmp_path):
    report = build_reports(write_hybrid(tmp_path / "run")).read_text()
    assert FID_SKIPPED in report
    assert "| temperature=0.1 | 0.1 | 0.0095 ± 0.00071 (2) |" in report
    assert "| Hybrid | 2.6 | 34.6 | 77.6 |" in report
    for name in ("hybrid_tradeoff.png", "hybrid_curves.png", "interpolation_1.png"):
        assert (tmp_path / "run" / "reports" / name).read_bytes().startswith(PNG), name
    # mean |x(t=1) - x(t=0)|: whole 1.0, first half 0.1, second half 0.5
    assert "| alpha=0.1, temperature=0.1 | 1.0000 | 0.1000 | 0.5000 |" in report


def test_interpolation_report_without_rows_says_why(tmp_path):
    report = build_reports(write_hybrid(tmp_path / "run", interpolation=False)).read_text()
    assert "no `evaluations.parquet` (it ran no evaluation suite), so there is no interpolation figure" in report


def test_images_refuse_incomplete_rows(tmp_path):
    results = load_results(write_hybrid(tmp_path / "run"))
    rows = results.evaluations[results.evaluations["trial_id"] == "h_0.1_0"]
    assert _images(rows)["whole"].shape == (2, 3, 1, 4, 4)
    assert _images(rows.iloc[:-1]) is None


@pytest.mark.parametrize("writer, message", [(write_simclr, "Linear evaluation"), (write_hybrid, "Reconstruction vs linear accuracy")])
def test_reports_are_listed_in_the_html(tmp_path, writer, message):
    build_reports(writer(tmp_path / "run"))
    assert message in (tmp_path / "run" / "reports" / "report.html").read_text()
