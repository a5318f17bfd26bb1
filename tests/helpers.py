"""Readers used by the end-to-end tests: what landed in MLflow and in the parquet files."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient


def mlflow_runs(tracking_uri: str, experiment: str):
    """(parent runs, child runs) of one experiment."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return [], []
    runs = client.search_runs([found.experiment_id], max_results=10_000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def metric_steps(tracking_uri: str, run_id: str, key: str) -> list[int]:
    return [m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, key)]


def read_tables(run_dir: Path):
    return pq.read_table(run_dir / "epochs.parquet").to_pandas(), pq.read_table(run_dir / "final.parquet").to_pandas()
