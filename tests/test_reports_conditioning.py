"""The invertibility report (``conditioning``) built from a fake InfoMax results directory.

The fake sweep: estimator {infonce, nwj} x critic {bilinear, separable} x encoder {realnvp, mlp}
x seeds {0, 1}, 4 epochs of 10 steps, plus one ERROR trial (nwj, separable, mlp, seed 2) whose
numbers would pull its cell off if they were (wrongly) averaged.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from orchestrator.reports import build_reports, load_results  # noqa: E402
from trainables.objectives.infomax.report import conditioning  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AXES = ["estimator", "critic", "encoder"]
SWEEP = {"name": "infomax_digits", "objective": "infomax", "dataset": "digits", "axes": AXES,
         "metric": "probe/test_acc", "mode": "max", "reports": ["conditioning"]}
GRID = list(itertools.product(["infonce", "nwj"], ["bilinear", "separable"], ["realnvp", "mlp"]))
EPOCHS, STEPS_PER_EPOCH = 4, 10
ERROR_TRIAL = ("nwj", "separable", "mlp", 2)


def fake(estimator, critic, encoder, seed, epoch):
    """(mi_bits, probe acc, median log cond) of one trial after ``epoch``."""
    mi = (1.0 + 0.5 * (estimator == "nwj") + 0.25 * (critic == "separable")) * epoch / EPOCHS + 0.1 * seed
    acc = 0.8 + 0.02 * (encoder == "mlp") - 0.01 * epoch + 0.01 * seed
    median = 0.5 * epoch * (1 + (encoder == "realnvp")) + 0.2 * seed
    return mi, acc, median


def write_results(directory: Path) -> None:
    epoch_rows, final_rows = [], []
    trials = [(*config, seed) for config in GRID for seed in (0, 1)] + [ERROR_TRIAL]
    for index, (estimator, critic, encoder, seed) in enumerate(trials):
        trial_id = f"t{index:02d}"
        config = {"config/estimator": estimator, "config/critic": critic, "config/encoder": encoder, "config/seed": seed}
        error = (estimator, critic, encoder, seed) == ERROR_TRIAL
        last = 2 if error else EPOCHS
        rows = []
        for epoch in range(1, last + 1):
            mi, acc, median = fake(estimator, critic, encoder, seed, epoch)
            if error:
                mi, acc, median = 100.0, 0.0, 50.0
            metrics = {"test/mi_bits": mi, "probe/test_acc": acc, "train/steps": float(epoch * STEPS_PER_EPOCH)}
            for p, offset in ((5, -1.0), (25, -0.5), (50, 0.0), (75, 0.5), (95, 1.0)):
                metrics[f"conditioning/log_condition_number_p{p:02d}"] = median + offset
            rows.append({"trial_id": trial_id, "epoch": epoch, **config, **metrics})
        epoch_rows += rows
        final_rows.append({"trial_id": trial_id, "status": "ERROR" if error else "TERMINATED",
                           "error": "FloatingPointError: non-finite training loss at epoch 3" if error else None,
                           "epochs_completed": last, **config, "config/mi_batch_size": 128,
                           **{k: v for k, v in rows[-1].items() if "/" in k and not k.startswith("config/")}})
    metadata = {b"sweep": json.dumps(SWEEP).encode()}
    for name, rows in (("epochs.parquet", epoch_rows), ("final.parquet", final_rows)):
        pq.write_table(pa.Table.from_pylist(rows).replace_schema_metadata(metadata), directory / name)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    write_results(tmp_path)
    return tmp_path


def test_report_draws_the_figure_and_tabulates_every_configuration(results_dir):
    report = build_reports(results_dir)
    out = report.parent
    assert (out / "conditioning.png").read_bytes()[:8] == PNG_SIGNATURE
    (section,) = [s for s in conditioning(load_results(results_dir), out)]
    table = section.tables[0]
    assert len(table.rows) == len(GRID)
    assert table.header[:3] == AXES
    row = next(r for r in table.rows if r[:3] == ["nwj", "separable", "mlp"])
    # the ERROR trial (seed 2) is not averaged in: mean over seeds 0 and 1 only
    mi = statistics.mean(fake("nwj", "separable", "mlp", s, EPOCHS)[0] for s in (0, 1))
    acc = statistics.mean(fake("nwj", "separable", "mlp", s, EPOCHS)[1] for s in (0, 1))
    median = statistics.mean(fake("nwj", "separable", "mlp", s, EPOCHS)[2] for s in (0, 1))
    first = statistics.mean(fake("nwj", "separable", "mlp", s, 1)[2] for s in (0, 1))
    assert row[3].startswith(f"{mi:.4g} ± ") and row[3].endswith("(2)")
    assert row[4].startswith(f"{acc:.4g} ± ")
    assert row[5].startswith(f"{median:.4g} ± ")
    assert row[6] == f"{median - 1:.3g} – {median + 1:.3g}"
    assert row[7].startswith(f"{first:.4g} ± ")
    text = report.read_text()
    assert "conditioning.png" in text and "log2 B = 7 bits" in text
    assert "ERROR trials (1)" in text


def test_report_without_infomax_columns_says_so(results_dir):
    results = load_results(results_dir)
    results.epochs = results.epochs.drop(columns=["probe/test_acc"])
    (section,) = conditioning(results, results_dir)
    assert "no `probe/test_acc` column" in section.paragraphs[0]
    assert not (results_dir / "conditioning.png").exists()
