"""Helpers of the end-to-end tests: what landed in MLflow and in the parquet files, and a sweep stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def interrupt_after(workspace, args: list[str], marker: str, timeout_s: float = 240) -> tuple[int, str, str]:
    """Run ``python -m orchestrator.sweep ARGS`` and press Ctrl-C (SIGINT to its process group, as a terminal does)
    when a line starts with ``marker``; ``(exit code, everything printed, the printed --resume command)``."""
    import pytest

    process = subprocess.Popen([sys.executable, "-u", "-m", "orchestrator.sweep", *workspace.args(*args)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workspace.root,
                               start_new_session=True)
    deadline, seen = time.monotonic() + timeout_s, []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(marker):
            os.killpg(process.pid, signal.SIGINT)
            break
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no line {marker!r} in {timeout_s:g} s:\n" + "".join(seen[-30:]))
    rest, _ = process.communicate(timeout=180)
    lines = rest.splitlines()
    heading = "sweep interrupted. Continue it with:"
    command = lines[lines.index(heading) + 1].strip() if heading in lines else ""
    return process.returncode, "".join(seen) + rest, command
