"""Paper claims as data (declared in search_spaces/<family>.py) and their verdicts (orchestrator/claims.py).

Each kind's verdict on small hand-made results (holds, fails, inconclusive with one seed), the tests against scipy
directly, the declarations' validation, ``claims.parquet`` and ``python -m orchestrator.claims`` on a temporary
results root with one finished run and sweeps never run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from orchestrator import claims as engine
from orchestrator.reports.data import SweepInfo, SweepResults
from search_spaces import claims as declarations
from search_spaces.claims import Claim
from search_spaces.dib import PAPER as ZHANG
from search_spaces.vib import PAPER as VIB_PAPER

DIB_BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0)


def results_of(rows: list[dict], axes: tuple[str, ...] = ("beta",), *, epochs: pd.DataFrame | None = None,
               dataset: str = "digits") -> SweepResults:
    """A SweepResults of finished dib_digits trials, one per row (``config/...`` and metric columns)."""
    final = pd.DataFrame([{"trial_id": f"t{i}", "status": "TERMINATED", "error": None, "epochs_completed": 3, **row}
                          for i, row in enumerate(rows)])
    if epochs is None:
        epochs = pd.DataFrame({"trial_id": pd.Series(dtype="str"), "epoch": pd.Series(dtype="int64")})
    info = SweepInfo(name="dib_digits", axes=axes, reports=(), dataset=dataset)
    return SweepResults(directory=Path("."), info=info, final=final, epochs=epochs)


def claim(**fields) -> Claim:
    base = {"id": "test.claim", "sweep": "dib_digits", "paper": ZHANG, "claim": "A claim.", "source": "Table 0",
            "expected": "something"}
    return Claim(**{**base, **fields})


def verdict(claim_: Claim, results: SweepResults) -> pd.Series:
    frame = engine.evaluate_claims(results, [claim_])
    assert list(frame.columns) == list(engine.COLUMNS)
    return frame.iloc[0]


def grid_rows(metric: str, values: dict[float, list[float]], key: str = "beta") -> list[dict]:
    return [{f"config/{key}": x, "config/seed": seed, metric: value}
            for x, per_seed in values.items() for seed, value in enumerate(per_seed)]


# ---- value --------------------------------------------------------------------------------------------------------

ACCURACIES = [0.90, 0.92, 0.95]


def _interval_low() -> float:
    mean, sem = sum(ACCURACIES) / 3, stats.sem(ACCURACIES)
    return stats.t.interval(0.95, len(ACCURACIES) - 1, loc=mean, scale=sem)[0]


@pytest.mark.parametrize("offset, expected", [(+1e-4, "holds"), (-1e-4, "fails")])
def test_value_holds_when_the_t_interval_reaches_the_band(offset, expected):
    low, tolerance = _interval_low(), 0.01
    paper = low - tolerance + offset  # the band's top sits just above (holds) or below (fails) the interval's bottom
    row = verdict(claim(kind="value", metric="test/acc", where={"beta": 0.5}, value=paper, tolerance=tolerance),
                  results_of(grid_rows("test/acc", {0.5: ACCURACIES, 1.0: [0.1, 0.1, 0.1]})))
    assert row["verdict"] == expected, row["detail"]
    assert row["ours_mean"] == pytest.approx(sum(ACCURACIES) / 3)
    assert row["ours_std"] == pytest.approx(pd.Series(ACCURACIES).std())
    assert row["n"] == 3 and row["expected_value"] == pytest.approx(paper)


def test_value_with_one_seed_is_inconclusive():
    row = verdict(claim(kind="value", metric="test/acc", where={"beta": 0.5}, value=0.9, tolerance=0.01),
                  results_of(grid_rows("test/acc", {0.5: [0.9]})))
    assert row["verdict"] == "inconclusive"
    assert "1 seed" in row["detail"] and row["ours"] == "0.9 (1)"


def test_value_best_takes_the_configuration_with_the_best_mean():
    rows = grid_rows("test/acc", {0.0: [0.50, 0.52], 0.5: [0.91, 0.93], 1.0: [0.70, 0.72]})
    row = verdict(claim(kind="value", metric="test/acc", best="max", value=0.92, tolerance=0.005), results_of(rows))
    assert row["verdict"] == "holds" and "beta=0.5" in row["detail"] and "optimistic" in row["detail"]


def test_a_missing_metric_or_configuration_is_inconclusive_and_named():
    results = results_of(grid_rows("test/acc", {0.5: [0.9, 0.91]}))
    row = verdict(claim(kind="value", metric="test/nothing", value=0.9, tolerance=0.01), results)
    assert row["verdict"] == "inconclusive" and "test/nothing" in row["detail"]
    row = verdict(claim(kind="value", metric="test/acc", where={"beta": 2.0}, value=0.9, tolerance=0.01), results)
    assert row["verdict"] == "inconclusive" and "beta=2" in row["detail"]


def test_a_run_on_another_dataset_is_inconclusive():
    results = results_of(grid_rows("test/acc", {0.5: [0.9, 0.91]}), dataset="mnist")
    row = verdict(claim(kind="value", metric="test/acc", value=0.9, tolerance=0.01), results)
    assert row["verdict"] == "inconclusive" and "mnist" in row["detail"]


# ---- ordering -----------------------------------------------------------------------------------------------------

ROBUST = "robust/pgd20_acc_eps0.1"
ABOVE = {"kind": "ordering", "metric": ROBUST, "a": {"beta": 0.5}, "b": {"beta": 0.0}, "direction": "above"}


@pytest.mark.parametrize("a, b, expected", [
    ([0.40, 0.43, 0.41], [0.10, 0.30, 0.12], "holds"),
    ([0.40, 0.20, 0.31], [0.10, 0.45, 0.30], "fails"),  # the means are ordered, not significantly
    ([0.10, 0.12, 0.11], [0.40, 0.43, 0.41], "fails"),  # reversed
])
def test_ordering_is_a_one_sided_welch_test_as_scipy_computes_it(a, b, expected):
    row = verdict(claim(**ABOVE), results_of(grid_rows(ROBUST, {0.5: a, 0.0: b})))
    welch = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-12)
    assert row["verdict"] == expected, row["detail"]
    assert row["ours_mean"] == pytest.approx(sum(a) / 3 - sum(b) / 3)
    se = math.sqrt(pd.Series(a).var() / 3 + pd.Series(b).var() / 3)
    assert row["ours_std"] == pytest.approx(se) and row["n"] == 6
    assert ("opposite order" in row["detail"]) == (expected == "fails" and sum(a) < sum(b))


def test_ordering_below_uses_the_other_tail():
    a, b = [0.10, 0.12, 0.11], [0.40, 0.43, 0.41]
    row = verdict(claim(**{**ABOVE, "direction": "below"}), results_of(grid_rows(ROBUST, {0.5: a, 0.0: b})))
    assert row["verdict"] == "holds"
    assert row["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)


def test_ordering_with_a_tolerance_is_a_non_inferiority_test():
    """'comparable': a a little below b holds within the margin and fails beyond it, by Welch's test on a + margin."""
    a, b = [0.940, 0.950, 0.945], [0.950, 0.955, 0.960]
    comparable = claim(**{**ABOVE, "tolerance": 0.02})
    row = verdict(comparable, results_of(grid_rows(ROBUST, {0.5: a, 0.0: b})))
    shifted = stats.ttest_ind([x + 0.02 for x in a], b, equal_var=False, alternative="greater")
    assert row["verdict"] == "holds" and row["p_value"] == pytest.approx(shifted.pvalue, rel=1e-12)
    assert "- 0.02" in row["detail"] and "- 0.02" in comparable.test
    worse = [x - 0.05 for x in a]
    assert verdict(comparable, results_of(grid_rows(ROBUST, {0.5: worse, 0.0: b})))["verdict"] == "fails"
    assert verdict(claim(**ABOVE), results_of(grid_rows(ROBUST, {0.5: a, 0.0: b})))["verdict"] == "fails"


def test_ordering_with_one_seed_or_constant_groups_is_inconclusive():
    row = verdict(claim(**ABOVE), results_of(grid_rows(ROBUST, {0.5: [0.4, 0.41], 0.0: [0.1]})))
    assert row["verdict"] == "inconclusive" and "1 seed" in row["detail"]
    row = verdict(claim(**ABOVE), results_of(grid_rows(ROBUST, {0.5: [0.4, 0.4], 0.0: [0.4, 0.4]})))
    assert row["verdict"] == "inconclusive" and "cannot be computed" in row["detail"]


def test_ordering_between_epochs_reads_epochs_parquet():
    final = [{"config/beta": 0.5, "config/seed": seed} for seed in (0, 1, 2)]
    epochs = pd.DataFrame([{"trial_id": f"t{i}", "epoch": epoch, "config/beta": 0.5,
                            "probe/test_acc": 0.5 + 0.1 * epoch + 0.01 * i} for i in range(3) for epoch in (1, 2, 3)])
    results = results_of(final, epochs=epochs)
    rising = claim(kind="ordering", metric="probe/test_acc", a={"epoch": "last"}, b={"epoch": 1}, direction="above")
    row = verdict(rising, results)
    last, first = [0.8, 0.81, 0.82], [0.6, 0.61, 0.62]
    assert row["verdict"] == "holds"
    assert row["p_value"] == pytest.approx(stats.ttest_ind(last, first, equal_var=False, alternative="greater").pvalue)


# ---- trend --------------------------------------------------------------------------------------------------------

TREND = {"kind": "trend", "metric": "test/rate_bits", "axis": "beta", "direction": "decreasing"}


def falling(seed_offset: float = 0.1) -> dict[float, list[float]]:
    return {beta: [10 / (1 + beta) + seed_offset * seed for seed in (0, 1)] for beta in DIB_BETAS}


def test_trend_is_a_one_sided_spearman_test_as_scipy_computes_it():
    rows = grid_rows("test/rate_bits", falling())
    row = verdict(claim(**TREND), results_of(rows))
    x, y = [r["config/beta"] for r in rows], [r["test/rate_bits"] for r in rows]
    spearman = stats.spearmanr(x, y, alternative="less")
    assert row["verdict"] == "holds", row["detail"]
    assert row["ours_mean"] == pytest.approx(spearman.statistic) and row["p_value"] == pytest.approx(spearman.pvalue)
    assert row["n"] == 14 and "0 adjacent pair" in row["detail"]


def test_a_rising_or_flat_trend_fails_and_one_seed_is_inconclusive():
    rising = {beta: [float(i), i + 0.5] for i, beta in enumerate(DIB_BETAS)}
    row = verdict(claim(**TREND), results_of(grid_rows("test/rate_bits", rising)))
    assert row["verdict"] == "fails" and row["ours_mean"] > 0
    noise = {beta: [1.0 + 0.01 * ((3 * i) % 5), 1.02 - 0.01 * (i % 2)] for i, beta in enumerate(DIB_BETAS)}
    assert verdict(claim(**TREND), results_of(grid_rows("test/rate_bits", noise)))["verdict"] == "fails"
    thin = {**falling(), 32.0: [0.3]}
    row = verdict(claim(**TREND), results_of(grid_rows("test/rate_bits", thin)))
    assert row["verdict"] == "inconclusive" and "beta=32" in row["detail"]


# ---- bound --------------------------------------------------------------------------------------------------------

def bound_rows(infonce: list[float]) -> list[dict]:
    rows = [{"config/estimator": "infonce", "config/mi_batch_size": 128, "config/seed": seed, "test/mi_nats": value}
            for seed, value in enumerate(infonce)]
    return rows + [{"config/estimator": "nwj", "config/mi_batch_size": 128, "config/seed": 0, "test/mi_nats": 9.0}]


BOUND = {"kind": "bound", "metric": "test/mi_nats", "where": {"estimator": "infonce"}, "direction": "<=",
         "limit": "log(mi_batch_size)", "tolerance": 1e-4}


def test_bound_holds_for_every_trial_or_names_the_one_beyond():
    limit = math.log(128)
    row = verdict(claim(**BOUND), results_of(bound_rows([3.0, limit + 5e-5]), axes=("estimator",)))
    assert row["verdict"] == "holds" and row["n"] == 2, row["detail"]  # the NWJ trial is not selected
    row = verdict(claim(**BOUND), results_of(bound_rows([3.0, 5.0]), axes=("estimator",)))
    assert row["verdict"] == "fails" and "1 of 2" in row["detail"] and "t1" in row["detail"]
    assert row["ours_mean"] == 5.0
    row = verdict(claim(**{**BOUND, "limit": 4.0}), results_of(bound_rows([3.0, 3.9]), axes=("estimator",)))
    assert row["verdict"] == "holds"


def test_bound_without_a_selected_trial_is_inconclusive():
    rows = [r for r in bound_rows([]) if r["config/estimator"] == "nwj"]
    row = verdict(claim(**BOUND), results_of(rows, axes=("estimator",)))
    assert row["verdict"] == "inconclusive" and "estimator=infonce" in row["detail"]


# ---- declarations -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field", [
    ({"kind": "guess", "metric": "test/acc"}, "kind"),
    ({"kind": "value", "metric": "test/acc", "value": 0.9}, "tolerance"),
    ({"kind": "value", "metric": "acc", "value": 0.9, "tolerance": 0.1}, "metric"),
    ({**ABOVE, "value": 0.3}, "value"),
    ({**ABOVE, "b": {"beta": 0.5}}, "b"),
    ({**ABOVE, "where": {"epoch": 1}}, "where"),
    ({**ABOVE, "direction": "increasing"}, "direction"),
    ({**TREND, "where": {"beta": 0.5}}, "axis"),
    ({**BOUND, "limit": "sqrt(mi_batch_size)"}, "limit"),
    ({**BOUND, "tolerance": -1.0}, "tolerance"),
    ({"kind": "value", "metric": "test/acc", "value": 0.9, "tolerance": 0.1, "source": " "}, "source"),
])
def test_a_bad_declaration_names_the_field(fields, field):
    with pytest.raises(ValueError, match=rf"claim 'test.claim': {field}:"):
        claim(**fields)


def test_claims_are_checked_against_their_sweep_when_listed(monkeypatch):
    with pytest.raises(ValueError, match="not among the sweep's values"):
        claim(**{**ABOVE, "a": {"beta": 0.3}}).check_against(_spec("dib_digits"))
    with pytest.raises(ValueError, match="not a config key"):
        claim(**{**TREND, "where": {"no_such_key": 2}}).check_against(_spec("dib_digits"))
    with pytest.raises(ValueError, match="unknown sweep"):
        declarations.claims_for("dib_digit")
    monkeypatch.setitem(declarations.CLAIMS, "test.claim", claim(sweep="no_such_sweep", **TREND))
    with pytest.raises(ValueError, match="claim 'test.claim': sweep: unknown sweep 'no_such_sweep'"):
        declarations.all_claims()


def test_every_declared_claim_fits_its_sweep():
    claims = declarations.all_claims()
    sweeps = {c.sweep for c in claims}
    assert {"dib_digits", "vib_digits", "knn_ib_digits", "ceb_digits", "vib_mnist", "knn_ib_cifar"} <= sweeps
    assert len({c.id for c in claims}) == len(claims)
    assert all(c.test for c in claims)
    with pytest.raises(ValueError, match="registered twice"):
        declarations.register_claim(claims[0])


def _spec(name: str):
    from search_spaces import get_sweep

    return get_sweep(name)


def test_the_report_section_lists_each_claim_with_its_verdict():
    results = results_of(dib_rows())
    section = engine.claims_section(results)
    assert section.title == "Claims" and "hold" in section.paragraphs[0]
    assert [row[0].split("`")[1] for row in section.tables[0].rows] == [
        c.id for c in declarations.claims_for("dib_digits")]
    assert not any("--seeds 3" in paragraph for paragraph in section.paragraphs)  # two seeds: decided
    one_seed = engine.claims_section(results_of([row for row in dib_rows() if row["config/seed"] == 0]))
    assert "inconclusive" in one_seed.paragraphs[0]
    assert "This run has 1 seed: `python -m orchestrator.sweep dib_digits --seeds 3`" in one_seed.paragraphs[-1]
    smoke = results_of([row for row in dib_rows() if row["config/seed"] == 0], dataset="digits_smoke")
    assert not any("--seeds 3" in paragraph for paragraph in engine.claims_section(smoke).paragraphs)  # seeds won't help
    unregistered = SweepResults(Path("."), SweepInfo(name="renamed_sweep", axes=("beta",), reports=()),
                                results.final, results.epochs)
    assert "unknown sweep 'renamed_sweep'" in engine.claims_section(unregistered).paragraphs[0]


# ---- claims.parquet and the CLI -----------------------------------------------------------------------------------

def write_run(root: Path, name: str, rows: list[dict], *, state: str | None = None) -> Path:
    """A run directory of dib_digits with final.parquet and epochs.parquet (and sweep.json when ``state``)."""
    run = root / name
    run.mkdir(parents=True)
    metadata = {b"sweep": json.dumps({"name": "dib_digits", "axes": ["beta"], "reports": [], "dataset": "digits",
                                      "paper": ZHANG, "run_name": name}).encode()}
    final = pd.DataFrame([{"trial_id": f"t{i}", "status": "TERMINATED", "error": None, "epochs_completed": 2,
                           "config/dataset": "digits", **row} for i, row in enumerate(rows)])
    epochs = final[["trial_id", "config/beta"]].assign(epoch=2)
    for frame, file in ((final, "final.parquet"), (epochs, "epochs.parquet")):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(metadata), run / file)
    if state is not None:
        (run / "sweep.json").write_text(json.dumps({"state": state}))
    return run


def dib_rows(robust_gain: float = 0.3) -> list[dict]:
    return [{"config/beta": beta, "config/seed": seed, "test/rate_bits": 10 / (1 + beta) + 0.1 * seed,
             "test/active_dims": 100 / (1 + beta) + seed, ROBUST: 0.1 + robust_gain * (beta > 0) + 0.01 * seed}
            for beta in DIB_BETAS for seed in (0, 1)]


def test_write_claims_writes_every_column_and_the_sweep_metadata(tmp_path):
    run = write_run(tmp_path, "dib_digits_2026-12-07_03-25-05", dib_rows())
    path = engine.write_claims(run)
    table = pq.read_table(path)
    assert path == run / "claims.parquet" and table.schema.names == list(engine.COLUMNS)
    assert table.schema.metadata[b"sweep"] == pq.read_schema(run / "final.parquet").metadata[b"sweep"]
    frame = table.to_pandas().set_index("id")
    assert list(frame.index) == [c.id for c in declarations.claims_for("dib_digits")]
    assert set(frame["verdict"]) == {"holds"}, frame["detail"].to_dict()
    assert not list(run.glob(".*.tmp"))
    assert engine.claims_summary(frame) == f"{len(frame)} hold, 0 fail, 0 inconclusive"


def test_cli_lists_every_claim_by_paper_with_the_latest_finished_run(tmp_path, capsys):
    write_run(tmp_path, "dib_digits_2026-12-07_03-25-05", dib_rows(robust_gain=0.3))
    write_run(tmp_path, "dib_digits_2026-12-07_04-00-00", dib_rows(robust_gain=-0.05))  # newer, also finished
    write_run(tmp_path, "dib_digits_2026-12-08_00-00-00", dib_rows(), state="running")  # newest, unfinished
    assert engine.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    sections = out.split("\n## ")
    papers = [section.splitlines()[0] for section in sections[1:]]
    assert papers == list(dict.fromkeys(c.paper for c in declarations.all_claims()))
    zhang = sections[1 + papers.index(ZHANG)]
    lines = {line.split(" | ")[1].split("`")[1]: line for line in zhang.splitlines() if line.startswith("| dib_digits")}
    assert set(lines) == {c.id for c in declarations.claims_for("dib_digits")}
    for claim_id, line in lines.items():
        assert "dib_digits_2026-12-07_04-00-00" in line
        assert ("| fails |" if "pgd20" in claim_id else "| holds |") in line, line
    alemi = sections[1 + papers.index(VIB_PAPER)]
    assert "| vib_digits |" in alemi and "| not run |" in alemi and "| holds |" not in alemi
    assert "39.00%" in zhang  # the paper's number beside ours


def test_cli_without_a_results_root_says_not_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IB_STORAGE", str(tmp_path / "nowhere"))
    assert engine.main([]) == 0
    out = capsys.readouterr().out
    assert f"{len(declarations.all_claims())} not run" in out and "| holds |" not in out
