"""Whole sweeps through real Ray Tune and a real MLflow SQLite store."""

from __future__ import annotations

import pytest

from orchestrator.sweep import main
from search_spaces import get_sweep, sweep_names
from tests.helpers import metric_steps, mlflow_runs, read_tables

pytestmark = pytest.mark.slow


def smoke_path(name: str) -> tuple:
    """What a sweep's smoke run exercises beyond its config values: the objective (a zoo's members), the reports and
    the attacks."""
    spec = get_sweep(name).with_overrides(smoke=True)
    return (spec.objective, tuple(m.objective for m in spec.members), tuple(sorted(spec.reports)),
            tuple(sorted(spec.evaluations)))


def smoke_runs() -> list[str]:
    """One sweep per distinct smoke path, the first by name, and each smoke dataset at least once (the first sweep by
    name on it). Sweeps that share a path differ only in config values, and every sweep's smoke config is validated
    and builds and steps its objective in tests/test_spec.py; the datasets load in tests/test_data.py."""
    names = sweep_names()
    runs = {smoke_path(name): name for name in reversed(names)}.values()
    dataset = {name: get_sweep(name).with_overrides(smoke=True).dataset for name in names}
    covered = {dataset[name] for name in runs}
    extra = {dataset[name]: name for name in reversed(names) if dataset[name] not in covered}
    return sorted([*runs, *extra.values()])


SMOKE_RUNS = smoke_runs()


@pytest.mark.parametrize("name", SMOKE_RUNS)
def test_smoke_sweep_lands_everywhere(name, workspace, ray_session, capsys):
    spec = get_sweep(name).with_overrides(smoke=True)
    assert main(workspace.args(name, "--smoke")) == 0
    out = capsys.readouterr().out
    (run_dir,) = workspace.run_dirs(name)

    epochs, final = read_tables(run_dir)
    trials = spec.num_trials()
    assert len(final) == trials and set(final["status"]) == {"TERMINATED"}
    assert len(epochs) == trials * spec.epochs
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    for axis, values in spec.axes().items():  # a zoo's members lack each other's keys: NaN there
        assert sorted(final[f"config/{axis}"].dropna().unique()) == sorted(values)

    parents, children = mlflow_runs(workspace.tracking_uri, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["sweep"] == name and parent.data.tags["git_commit"]
    assert parent.data.tags["version.torch"] and "orchestrator.sweep" in parent.data.tags["command"]
    assert len(children) == trials
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        row = final[final["trial_id"] == child.data.tags["ib.trial_id"]].iloc[0]
        assert child.data.params["objective"] == (row["config/objective"] if spec.is_zoo else spec.objective)
        assert set(child.data.params) >= set(spec.base_config())
        assert metric_steps(workspace.tracking_uri, child.info.run_id, spec.metric) == list(range(1, spec.epochs + 1))
        assert child.data.metrics[spec.metric] == pytest.approx(row[spec.metric])

    if spec.evaluations:  # the attacks ran after the last epoch of every trial and landed everywhere
        import pyarrow.parquet as pq

        evaluations = pq.read_table(run_dir / "evaluations.parquet").to_pandas()
        assert set(evaluations["trial_id"]) == set(final["trial_id"])
        assert set(spec.evaluations) <= set(evaluations["evaluation"])
        assert {"clean", "masking", "worst_case", "zero_gradient"} <= set(evaluations["evaluation"])
        for child in children:
            assert "robust/clean_acc" in child.data.metrics and "robust/masking_violations" in child.data.metrics
    elif (run_dir / "evaluations.parquet").exists():  # only rows of the objective's own (hybrid: interpolations)
        import pyarrow.parquet as pq

        own = set(pq.read_table(run_dir / "evaluations.parquet").to_pandas()["evaluation"])
        from trainables.evaluation import EVALUATIONS

        suite = {*EVALUATIONS, "clean", "masking", "worst_case", "zero_gradient", "noise", "unbounded_pgd"}
        assert own and not own & suite, own

    reports = run_dir / "reports"
    figures = [f"{name}.png" for name in ("accuracy_vs_beta", "rate_vs_beta", "conditioning", "hybrid_tradeoff") if name in spec.reports]
    for file in ("report.md", "report.html", *figures):
        assert (reports / file).stat().st_size > 0, file
    assert str(reports / "report.md") in out and "mlflow ui --backend-store-uri" in out
    artifacts = {a.path for a in __import__("mlflow").tracking.MlflowClient(workspace.tracking_uri)
                 .list_artifacts(parent.info.run_id, "reports")}
    assert "reports/report.md" in artifacts


def test_a_diverging_trial_fails_alone(workspace, ray_session):
    """lr = 1e30 makes the VIB's loss NaN in epoch 1; that trial ends in error, the other finishes."""
    code = main(workspace.args("vib_digits", "--smoke", "--set", "lr=[0.001, 1e30]", "--set", "beta=0.001"))
    assert code == 1
    (run_dir,) = workspace.run_dirs("vib_digits")
    _, final = read_tables(run_dir)
    by_lr = {row["config/lr"]: row for _, row in final.iterrows()}
    assert by_lr[0.001]["status"] == "TERMINATED"
    assert by_lr[1e30]["status"] == "ERROR"
    assert "non-finite training loss at epoch 1" in by_lr[1e30]["error"]
    _, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
    statuses = sorted(c.info.status for c in children)
    assert statuses == ["FAILED", "FINISHED"]
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "non-finite training loss at epoch 1" in failed.data.tags["error"]
    assert (run_dir / "reports" / "report.md").exists()


def test_optuna_search_runs_the_requested_number_of_trials(workspace, ray_session):
    assert main(workspace.args("vib_digits", "--smoke", "--search", "optuna", "--trials", "3",
                               "--max-concurrent", "2")) == 0
    (run_dir,) = workspace.run_dirs("vib_digits")
    _, final = read_tables(run_dir)
    assert len(final) == 3 and set(final["status"]) == {"TERMINATED"}
    betas = final["config/beta"]
    assert ((betas >= 1e-9) & (betas <= 1.0)).all() and betas.nunique() == 3
