"""A sweep interrupted by Ctrl-C while two trials train at once, continued with the printed
--resume command: every trial exactly once. Ctrl-C at the sweep's other moments is
tests/test_interrupt.py."""

from __future__ import annotations

import json
import shlex

import pytest

from orchestrator.sweep import main
from tests.helpers import interrupt_after, metric_steps, mlflow_runs, read_tables

pytestmark = pytest.mark.slow

ARGS = ["vib_digits", "--smoke", "--set", "beta=[0.001, 0.01, 0.1, 1.0]", "--epochs", "3"]  # two trials at once


def test_interrupted_sweep_resumes_without_duplicates(workspace, ray_session, capsys):
    code, output, command = interrupt_after(workspace, ARGS, "[1/4]")  # Ctrl-C once the first trial finished
    assert code == 130, output
    assert command.startswith("python -m orchestrator.sweep vib_digits ") and command.endswith(" --resume")

    parents, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
    assert parents[0].info.status == "KILLED" and {c.info.status for c in children} <= {"FINISHED", "KILLED"}
    finished_before = {c.data.tags["ib.trial_id"] for c in children if c.info.status == "FINISHED"}
    assert 1 <= len(finished_before) < 4
    (run_dir,) = workspace.run_dirs("vib_digits")
    assert json.loads((run_dir / "sweep.json").read_text())["state"] == "interrupted"
    _, final = read_tables(run_dir)  # what had finished, and the rest as INCOMPLETE
    assert len(final) == 4 and set(final[final["status"] == "TERMINATED"]["trial_id"]) >= finished_before
    assert set(final["status"]) == {"TERMINATED", "INCOMPLETE"}
    written = (run_dir / "final.parquet").stat().st_mtime_ns

    # the spec changed since the sweep started: refused, naming the difference, nothing touched
    assert main(workspace.args(*ARGS, "--set", "lr=0.01", "--resume")) == 2
    assert "was started with another spec (config.lr: was 0.001, now 0.01)" in capsys.readouterr().err
    assert (run_dir / "final.parquet").stat().st_mtime_ns == written

    assert main(shlex.split(command)[3:]) == 0  # the printed command itself, in this process
    from orchestrator.mlflow_callback import MlflowTrackingCallback
    assert MlflowTrackingCallback.resume_tracking_uri is None  # the resumed store's address stays with that sweep

    parents, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4 and len({c.data.tags["ib.trial_id"] for c in children}) == 4
    for child in children:
        assert child.info.status == "FINISHED"
        assert metric_steps(workspace.tracking_uri, child.info.run_id, "test/acc") == [1, 2, 3]
    epochs, final = read_tables(run_dir)
    assert len(final) == 4 and set(final["status"]) == {"TERMINATED"}
    assert len(epochs) == 12 and not epochs.duplicated(["trial_id", "epoch"]).any()
    for trial_id in finished_before:  # a finished trial was not run again
        (trial_dir,) = run_dir.glob(f"train_{trial_id}_*")
        assert len((trial_dir / "result.json").read_text().splitlines()) == 3
