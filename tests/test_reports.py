"""Reports built from fake results directories written with pyarrow.

The fake sweep: beta in {0, 1e-3, 1e-1, 1} x latent_dim in {2, 8} x seeds {0, 1}, 3 epochs, and
one ERROR trial (beta=1, latent_dim=2, seed=1) whose last reported test/acc would pull the mean of
its cell down if it were (wrongly) averaged.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from orchestrator.reports import REPORTS, build_reports, load_results, report_names  # noqa: E402
from orchestrator.reports.data import summarize_over_seeds  # noqa: E402
from orchestrator.reports.figures import apply_beta_scale  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SWEEP = {
    "name": "vib_digits",
    "description": "Deep variational information bottleneck on the 8x8 digits",
    "paper": "Alemi et al., Deep Variational Information Bottleneck",
    "objective": "vib",
    "dataset": "digits",
    "axes": ["beta", "latent_dim"],
    "metric": "test/acc",
    "mode": "max",
    "reports": ["accuracy_vs_beta", "rate_vs_beta"],
    "run_name": "vib_digits_2026-11-22_15-30-00",
}
BETAS = [0.0, 1e-3, 1e-1, 1.0]
LATENT_DIMS = [2, 8]
SEEDS = [0, 1]
EPOCHS = 3
ERROR_CONFIG = (1.0, 2, 1)  # (beta, latent_dim, seed) of the trial that fails in epoch 2
ERROR_MESSAGE = "Traceback (most recent call last):\n  File 'harness.py', line 1\nRuntimeError: non-finite loss at epoch 2 in term rate_bits"


def fake_accuracy(beta: float, latent_dim: int, seed: int, epoch: int = EPOCHS) -> float:
    return (0.9 - 0.3 * beta - 0.05 * (latent_dim == 2) + 0.01 * seed) * epoch / EPOCHS


def fake_rate(beta: float, latent_dim: int, seed: int, epoch: int = EPOCHS) -> float:
    return latent_dim * 4.0 / (1 + 100 * beta) + 0.1 * seed + 1.0 / epoch


def fake_metrics(beta, latent_dim, seed, epoch, *, monte_carlo: bool) -> dict[str, float]:
    accuracy = fake_accuracy(beta, latent_dim, seed, epoch)
    rate = fake_rate(beta, latent_dim, seed, epoch)
    metrics = {
        "train/loss": 1.0 - accuracy + beta * rate,
        "train/ce": 1.0 - accuracy,
        "test/acc": accuracy,
        "test/ce": 1.1 - accuracy,
        "test/rate_bits": rate,
        "test/izy_bits": 3.0 * accuracy,
        "time_total_s": 2.0 * epoch,
    }
    if monte_carlo:
        metrics["test/acc_mc"] = accuracy - 0.02
        metrics["train/rate_bits"] = rate * 1.1
    return metrics


def write_fake_sweep(directory: Path, *, sweep: dict | None = None, monte_carlo: bool = True) -> Path:
    """Write final.parquet and epochs.parquet of the fake sweep into ``directory``."""
    sweep = dict(SWEEP if sweep is None else sweep)
    final_rows, epoch_rows = [], []
    index = 0
    for beta in BETAS:
        for latent_dim in LATENT_DIMS:
            for seed in SEEDS:
                trial_id = f"trial_{index:03d}"
                index += 1
                failed = (beta, latent_dim, seed) == ERROR_CONFIG
                epochs_completed = 1 if failed else EPOCHS
                axes = {f"config/{axis}": value for axis, value in (("beta", beta), ("latent_dim", latent_dim)) if axis in sweep["axes"]}
                for epoch in range(1, epochs_completed + 1):
                    epoch_rows.append({"trial_id": trial_id, "epoch": epoch, **axes, "config/seed": seed, **fake_metrics(beta, latent_dim, seed, epoch, monte_carlo=monte_carlo)})
                metrics = fake_metrics(beta, latent_dim, seed, EPOCHS, monte_carlo=monte_carlo)
                if failed:
                    metrics = fake_metrics(beta, latent_dim, seed, 1, monte_carlo=monte_carlo)
                    metrics["test/acc"] = 0.05  # would drag its cell's mean from 0.55 to 0.3 if averaged
                    metrics["test/rate_bits"] = None
                final_rows.append(
                    {
                        "trial_id": trial_id,
                        "status": "ERROR" if failed else "TERMINATED",
                        "error": ERROR_MESSAGE if failed else None,
                        "epochs_completed": epochs_completed,
                        "config/beta": beta,
                        "config/latent_dim": latent_dim,
                        "config/seed": seed,
                        "config/objective": sweep["objective"],
                        "config/dataset": sweep["dataset"],
                        **metrics,
                    }
                )
    metadata = {b"sweep": json.dumps(sweep).encode()}
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(final_rows).replace_schema_metadata(metadata), directory / "final.parquet")
    pq.write_table(pa.Table.from_pylist(epoch_rows).replace_schema_metadata(metadata), directory / "epochs.parquet")
    return directory


def markdown_table(markdown: str, caption: str) -> list[list[str]]:
    """The rows (header first) of the markdown table that follows the bold ``caption``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"**{caption}"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return write_fake_sweep(tmp_path / "results")


@pytest.fixture
def built(results_dir: Path) -> Path:
    return build_reports(results_dir)


def test_load_results_reads_both_tables_and_the_metadata(results_dir):
    results = load_results(results_dir)
    assert results.info.name == "vib_digits"
    assert results.info.axes == ("beta", "latent_dim")
    assert results.info.reports == ("accuracy_vs_beta", "rate_vs_beta")
    assert len(results.final) == len(BETAS) * len(LATENT_DIMS) * len(SEEDS)
    assert len(results.epochs) == (len(results.final) - 1) * EPOCHS + 1
    assert results.status_counts() == {"ERROR": 1, "TERMINATED": 15}


def test_build_reports_writes_markdown_html_and_pngs(results_dir, built):
    out = results_dir / "reports"
    assert built == out / "report.md"
    assert built.read_text().startswith("# Sweep vib_digits")
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    for name in ("accuracy_vs_beta.png", "rate_vs_beta.png", "curves.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name
        assert f"({name})" in built.read_text() and f'src="{name}"' in html
    # Self-contained but for the PNGs beside it: no link leaves the directory.
    assert set(re.findall(r'src="([^"]+)"', html)) == {"accuracy_vs_beta.png", "rate_vs_beta.png", "curves.png"}
    assert not list(out.glob(".*.tmp"))
    # every table scrolls inside the text column when it is wider than it
    assert html.count("<table>") == html.count('<div class="wide">\n<table>') > 0 and ".wide{overflow-x:auto}" in html


def test_header_names_the_sweep_and_counts_trials_by_status(built):
    text = built.read_text()
    for value in (SWEEP["description"], SWEEP["paper"], SWEEP["run_name"], "`vib`", "`digits`"):
        assert value in text
    assert "16 (ERROR 1, TERMINATED 15)" in text


def test_accuracy_table_holds_mean_std_and_count_over_seeds(results_dir, built):
    values = [fake_accuracy(0.1, 8, seed) for seed in SEEDS]
    expected = f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g} (2)"
    table = markdown_table(built.read_text(), "Final `test/acc`")
    assert table[0] == ["latent_dim", "beta=0", "beta=0.001", "beta=0.1", "beta=1"]
    row = next(row for row in table if row[0] == "8")
    assert row[3] == expected == "0.875 ± 0.0071 (2)"

    summary = summarize_over_seeds(load_results(results_dir).finished, "test/acc", ["latent_dim", "beta"])
    cell = summary[(summary["config/latent_dim"] == 8) & (summary["config/beta"] == 0.1)].iloc[0]
    assert cell["mean"] == pytest.approx(statistics.mean(values))
    assert cell["std"] == pytest.approx(statistics.stdev(values))
    assert cell["n"] == 2


def test_error_trials_are_listed_and_left_out_of_the_means(built):
    text = built.read_text()
    errors = markdown_table(text, "ERROR trials (1)")
    assert errors[0] == ["trial_id", "beta", "latent_dim", "seed", "epochs_completed", "error (last line)"]
    assert errors[1] == ["trial_013", "1", "2", "1", "1", "RuntimeError: non-finite loss at epoch 2 in term rate_bits"]
    accuracy = markdown_table(text, "Final `test/acc`")
    assert next(row for row in accuracy if row[0] == "2")[4] == f"{fake_accuracy(1.0, 2, 0):.4g} (1)" == "0.55 (1)"
    rate = markdown_table(text, "Final `test/rate_bits`")
    assert next(row for row in rate if row[0] == "2")[4] == f"{fake_rate(1.0, 2, 0):.4g} (1)"
    assert "Means use the 15 finished (TERMINATED) trials only; excluded: 1 ERROR." in text


def test_a_k_nn_rate_is_tabled_with_its_bias_and_said_to_be_one(results_dir, built):
    assert "k-NN" not in built.read_text()  # a rate that is not a k-NN estimate gets no such note
    final = pq.read_table(results_dir / "final.parquet")
    frame = final.to_pandas().assign(**{"test/h_z_knn_bias_bits": lambda f: 0.5 * f["config/latent_dim"]})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(final.schema.metadata),
                   results_dir / "final.parquet")
    text = build_reports(results_dir).read_text()
    assert "These trials' rate is a k-NN (Kozachenko-Leonenko) estimate of H(Z)" in text
    bias = markdown_table(text, "Final `test/h_z_knn_bias_bits`")
    assert next(row for row in bias if row[0] == "8")[1:] == ["4 ± 0 (2)"] * 4


def test_a_sweep_whose_trials_all_failed_still_gets_a_report(results_dir):
    final = pq.read_table(results_dir / "final.parquet")
    rows = [{**row, "status": "ERROR", "error": "ValueError: boom"} for row in final.to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows, schema=final.schema), results_dir / "final.parquet")
    text = build_reports(results_dir).read_text()
    assert "No finished trial reported `test/acc`, so there is no figure." in text
    assert "ERROR trials (16)" in text
    assert not (results_dir / "reports" / "accuracy_vs_beta.png").exists()


@pytest.mark.parametrize("name", report_names())
def test_every_registered_report_returns_sections_and_writes_its_figure(name, results_dir, tmp_path):
    sections = REPORTS[name](load_results(results_dir), tmp_path)
    assert sections and all(section.title for section in sections)
    for section in sections:
        for figure in section.figures:
            assert (tmp_path / figure.file_name).read_bytes().startswith(PNG_SIGNATURE)


def test_secondary_metrics_are_optional(tmp_path):
    text = build_reports(write_fake_sweep(tmp_path / "results", monte_carlo=False)).read_text()
    text = text[text.index("\n## Sweep"):]  # after the claims, whose details may name a missing column
    assert "test/acc_mc" not in text and "train/rate_bits" not in text
    assert "Final `test/acc`" in text and (tmp_path / "results" / "reports" / "accuracy_vs_beta.png").exists()


def test_a_sweep_without_a_beta_axis_says_so(tmp_path):
    directory = write_fake_sweep(tmp_path / "results", sweep={**SWEEP, "axes": ["latent_dim"]})
    text = build_reports(directory, tmp_path / "out").read_text()
    assert "does not sweep `beta` (swept axes: `latent_dim`), so there is no test accuracy vs beta" in text
    assert "does not sweep `beta` (swept axes: `latent_dim`), so there is no rate vs beta" in text
    assert "No learning-curves figure: `epochs.parquet` has no `config/beta` column." in text
    assert not (tmp_path / "out" / "accuracy_vs_beta.png").exists()


def test_unknown_report_name_raises_naming_it_and_close_matches(tmp_path):
    directory = write_fake_sweep(tmp_path / "results", sweep={**SWEEP, "reports": ["accuracy_vs_betta"]})
    with pytest.raises(ValueError, match=r"unknown report 'accuracy_vs_betta'.*did you mean accuracy_vs_beta"):
        build_reports(directory)
    assert not (directory / "reports" / "report.md").exists()


def test_a_failing_report_leaves_the_previous_report_intact(results_dir, built, monkeypatch):
    before = built.read_text()

    def broken(results, out_dir):
        raise RuntimeError("report crashed")

    monkeypatch.setitem(REPORTS, "broken", broken)
    write_fake_sweep(results_dir, sweep={**SWEEP, "reports": ["accuracy_vs_beta", "broken"]})
    with pytest.raises(RuntimeError, match="report crashed"):
        build_reports(results_dir)
    assert built.read_text() == before
    assert not list(built.parent.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("betas", "scale"),
    [([0.0, 1e-3, 0.1, 1.0], "symlog"), ([1e-3, 0.1, 1.0], "log"), ([0.0], "linear")],
)
def test_beta_axis_is_logarithmic_and_keeps_beta_zero(betas, scale):
    axes = Figure().add_subplot()
    apply_beta_scale(axes, betas)
    assert axes.get_xscale() == scale
    if scale == "symlog":
        assert axes.xaxis.get_transform().linthresh == 1e-3


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.report", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_cli_rebuilds_the_reports_and_prints_the_path(results_dir, tmp_path):
    completed = run_cli(str(results_dir), "--out", str(tmp_path / "out"))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str(tmp_path / "out" / "report.md")
    assert (tmp_path / "out" / "report.html").exists()


def _missing(directory: Path) -> None:
    pass


def _empty(directory: Path) -> None:
    directory.mkdir()


def _no_metadata(directory: Path) -> None:
    write_fake_sweep(directory)
    for name in ("final.parquet", "epochs.parquet"):
        pq.write_table(pq.read_table(directory / name).replace_schema_metadata({}), directory / name)


def _corrupt_metadata(directory: Path) -> None:
    write_fake_sweep(directory)
    table = pq.read_table(directory / "final.parquet")
    pq.write_table(table.replace_schema_metadata({b"sweep": b'{"name": "vib_digits", '}), directory / "final.parquet")


def _corrupt_parquet(directory: Path) -> None:
    write_fake_sweep(directory)
    (directory / "final.parquet").write_bytes(b"not parquet at all")


def _missing_axis_column(directory: Path) -> None:
    write_fake_sweep(directory)
    table = pq.read_table(directory / "final.parquet")
    pq.write_table(table.drop_columns(["config/latent_dim"]), directory / "final.parquet")


def _unknown_report(directory: Path) -> None:
    write_fake_sweep(directory, sweep={**SWEEP, "reports": ["robustnes"]})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_missing, "no such results directory"),
        (_empty, "final.parquet: no such file"),
        (_no_metadata, "schema metadata lacks the key b'sweep'"),
        (_corrupt_metadata, "sweep metadata is not valid JSON"),
        (_corrupt_parquet, "final.parquet: not a readable parquet file"),
        (_missing_axis_column, "lacks the column(s) config/latent_dim"),
        (_unknown_report, "unknown report 'robustnes'"),
    ],
)
def test_cli_turns_bad_input_into_one_error_line_and_exit_code_2(make, expected, tmp_path):
    directory = tmp_path / "results"
    make(directory)
    completed = run_cli(str(directory))
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], completed.stderr


def test_load_results_error_types(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such results directory"):
        load_results(tmp_path / "nowhere")
    _corrupt_metadata(tmp_path / "results")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "results" / "final.parquet"))):
        load_results(tmp_path / "results")
