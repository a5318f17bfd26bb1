"""The IB zoo report (``zoo``) built from a fake zoo sweep.

The fake sweep: objectives ``ce`` (no beta: ``config/beta`` is null), ``dib``, ``vib`` and ``knn_ib``, three betas
each, seeds {0, 1, 2}, plus one ERROR trial (dib, beta=0.1, seed 3) whose accuracy would pull its cell down if it were
(wrongly) averaged. Ten configurations over four objectives make two quantile bands of the configurations' mean
I(X;Z), split at 5.1 bits. In the low band dib > vib > knn_ib by far more than their spread, and ce is absent; in
the high band ce and vib (beta=0.01) differ by less than vib's spread over seeds: a tie, no ranking claim.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from orchestrator.reports import build_reports, load_results  # noqa: E402
from orchestrator.reports.zoo import RANKING_TITLE, TITLE, band_edges, zoo  # noqa: E402
from tests.test_reports import PNG_SIGNATURE, markdown_table  # noqa: E402
from tests.test_reports_robustness import percent_cell, section  # noqa: E402

SWEEP = {"name": "zoo_digits", "objective": "zoo", "dataset": "digits", "axes": ["objective", "beta"],
         "metric": "test/acc", "mode": "max", "reports": ["zoo"]}
SEEDS = [0, 1, 2]
EPSILON = 8 / 255
# (objective, beta): (mean I(X;Z) bits, mean test accuracy, accuracy spread per seed)
CONFIGURATIONS = {
    ("dib", 1.0): (2.0, 0.70, 0.005), ("vib", 1.0): (2.2, 0.68, 0.005), ("knn_ib", 0.8): (2.4, 0.80, 0.005),
    ("dib", 0.1): (4.0, 0.90, 0.005), ("vib", 0.1): (4.2, 0.85, 0.005),
    ("knn_ib", 0.4): (6.0, 0.75, 0.005), ("dib", 0.01): (8.0, 0.80, 0.005), ("vib", 0.01): (8.2, 0.915, 0.02),
    ("knn_ib", 0.0): (8.4, 0.70, 0.005), ("ce", None): (10.0, 0.92, 0.005),
}
ERROR_TRIAL = ("dib", 0.1, 3)


def izx(objective: str, beta: float | None, seed: int) -> float:
    return CONFIGURATIONS[(objective, beta)][0] + 0.05 * (seed - 1)


def accuracy(objective: str, beta: float | None, seed: int) -> float:
    _, mean, spread = CONFIGURATIONS[(objective, beta)]
    return mean + spread * (seed - 1)  # seeds 0, 1, 2: sample std = spread


def robust_accuracy(objective: str, beta: float | None, seed: int) -> float:
    return accuracy(objective, beta, seed) - 0.3


def write_zoo_sweep(directory: Path, *, info_plane: bool = True, evaluations: bool = True,
                    izx_in_final: bool = True) -> Path:
    """Write final.parquet, epochs.parquet and (unless told not to) evaluations.parquet of the fake zoo."""
    final_rows, epoch_rows, eval_rows = [], [], []
    trials = [(objective, beta, seed) for (objective, beta) in CONFIGURATIONS for seed in SEEDS] + [ERROR_TRIAL]
    for number, (objective, beta, seed) in enumerate(trials):
        trial_id = f"trial_{number:03d}"
        failed = (objective, beta, seed) == ERROR_TRIAL
        config = {"config/objective": objective, "config/beta": beta, "config/seed": seed}
        metrics = {"test/acc": 0.1 if failed else accuracy(objective, beta, seed), "test/rate_bits": 100.0 * (seed + 1)}
        plane = {}
        if info_plane and not failed:
            plane = {"infoplane/izx_bits": izx(objective, beta, seed), "infoplane/knn_bias_bits": 0.4 + 0.1 * seed + 0.2 * (objective == "vib"),
                     "infoplane/izx_floor_bits": 1.0}
        final_rows.append({"trial_id": trial_id, "status": "ERROR" if failed else "TERMINATED",
                           "error": "RuntimeError: boom" if failed else None, "epochs_completed": 1 if failed else 2,
                           **config, **metrics, **(plane if izx_in_final else {})})
        # the first epoch's I(X;Z) is not the last measurement: a report that took it would misplace every point
        epoch_rows += [{"trial_id": trial_id, "epoch": 1, **config, "test/acc": 0.5,
                        **{key: value + 50.0 for key, value in plane.items()}},
                       {"trial_id": trial_id, "epoch": 2, **config, **metrics, **plane}]
        base = {"trial_id": trial_id, **config, "norm": "linf", "epsilon": EPSILON, "steps": None, "index": None}
        eval_rows += [{**base, "evaluation": "pgd", "metric": "acc", "steps": 20, "value": 0.0 if failed else robust_accuracy(objective, beta, seed) + 0.01},
                      {**base, "evaluation": "worst_case", "metric": "acc", "value": 0.0 if failed else robust_accuracy(objective, beta, seed)}]
    metadata = {b"sweep": json.dumps(SWEEP).encode()}
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(final_rows).replace_schema_metadata(metadata), directory / "final.parquet")
    pq.write_table(pa.Table.from_pylist(epoch_rows).replace_schema_metadata(metadata), directory / "epochs.parquet")
    if evaluations:
        pq.write_table(pa.Table.from_pylist(eval_rows).replace_schema_metadata(metadata), directory / "evaluations.parquet")
    return directory


def band(text: str, number: int) -> list[list[str]]:
    return markdown_table(text, f"{RANKING_TITLE}, band {number} of 2")


def cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g} ({len(values)})"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_reports(write_zoo_sweep(tmp_path_factory.mktemp("zoo") / "results"))


def test_the_report_has_both_sections_both_figures_and_the_ruler(built):
    text = built.read_text()
    assert f"\n## {TITLE}\n" in text and f"\n## {RANKING_TITLE}\n" in text
    for name in ("zoo_accuracy.png", "zoo_robust.png"):
        assert (built.parent / name).read_bytes().startswith(PNG_SIGNATURE), name
        assert f"({name})" in text
    ruler = section(text, TITLE)
    assert "The common ruler is `infoplane/izx_bits`" in ruler
    assert "`infoplane/knn_bias_bits` (the estimator's bias on a Gaussian" in ruler and "from 0.5 to 0.7 bits" in ruler
    assert "Means use the 30 finished (TERMINATED) trials only; excluded: 1 ERROR." in ruler


def test_the_low_band_ranks_by_test_accuracy_and_lists_the_absent_baseline(built):
    text = built.read_text()
    table = band(text, 1)
    assert table[0] == ["rank", "objective", "beta", "I(X;Z), bits", "k-NN bias, bits", "test acc (%)",
                        "robust acc (%), L∞ eps 8/255", "seeds"]
    assert [row[:3] for row in table[1:]] == [["1", "dib", "0.1"], ["2", "vib", "0.1"], ["3", "knn_ib", "0.8"],
                                              ["absent", "ce", "–"]]
    # the ERROR trial (accuracy 0.1) is left out, and each I(X;Z) is the last measurement, not the first epoch's
    assert table[1][3] == cell([izx("dib", 0.1, seed) for seed in SEEDS]) == "4 ± 0.05 (3)"
    assert table[1][5] == percent_cell([accuracy("dib", 0.1, seed) for seed in SEEDS]) == "90.0 ± 0.5 (3)"
    assert table[1][6] == percent_cell([robust_accuracy("dib", 0.1, seed) for seed in SEEDS])
    assert table[1][7] == "3" and table[4][3:] == ["–"] * 5
    assert "mean I(X;Z) in [2, 5.1] bits; `dib` leads by 5 points of test accuracy, more than one std" in text


def test_the_high_band_flags_a_tie_within_one_std_and_keeps_the_baseline_without_beta(built):
    text = built.read_text()
    table = band(text, 2)
    assert [row[:3] for row in table[1:]] == [["1=", "ce", "–"], ["1=", "vib", "0.01"], ["3", "dib", "0.01"],
                                              ["4", "knn_ib", "0.4"]]
    assert table[1][5] == percent_cell([accuracy("ce", None, seed) for seed in SEEDS]) == "92.0 ± 0.5 (3)"
    assert "no ranking claim: `ce` and `vib` differ by 0.5 points of test accuracy, within one std (2)." in text


def test_the_last_measurement_comes_from_the_epochs_when_final_lacks_it(tmp_path, built):
    text = build_reports(write_zoo_sweep(tmp_path / "results", izx_in_final=False)).read_text()
    assert band(text, 1) == band(built.read_text(), 1) and band(text, 2) == band(built.read_text(), 2)


def test_band_edges_are_quantiles_of_the_configurations(tmp_path):
    means = [values[0] for values in CONFIGURATIONS.values()]
    assert band_edges(means, 4).tolist() == [2.0, 5.1, 10.0]
    assert band_edges(means, 1).tolist() == pytest.approx([2.0, 2.8, 5.1, 8.15, 10.0])  # never more than four bands
    assert band_edges([3.0, 3.0, math.nan], 4).tolist() == [3.0]


def test_without_the_info_plane_the_report_is_a_one_line_note(tmp_path):
    results = load_results(write_zoo_sweep(tmp_path / "results", info_plane=False))
    sections = zoo(results, tmp_path / "out")
    assert [s.title for s in sections] == [TITLE] and len(sections[0].paragraphs) == 1 and not sections[0].figures
    assert "No finished trial has `infoplane/izx_bits`" in sections[0].paragraphs[0]
    assert "\n## IB zoo" in build_reports(results.directory).read_text()


def test_without_attacks_the_robust_figure_and_columns_give_way_to_a_note(tmp_path):
    text = build_reports(write_zoo_sweep(tmp_path / "results", evaluations=False)).read_text()
    assert "The sweep wrote no `evaluations.parquet`" in section(text, TITLE)
    assert not (tmp_path / "results" / "reports" / "zoo_robust.png").exists()
    assert band(text, 1)[0][-2:] == ["test acc (%)", "seeds"]
