"""A sweep interrupted after some trials and rerun with --resume: every trial exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from orchestrator.sweep import main
from tests.helpers import metric_steps, mlflow_runs, read_tables

pytestmark = pytest.mark.slow

ARGS = ["vib_digits", "--smoke", "--set", "beta=[0.001, 0.01, 0.1, 1.0]", "--epochs", "3", "--max-concurrent", "1"]


def test_interrupted_sweep_resumes_without_duplicates(workspace, ray_session, capsys):
    process = subprocess.Popen([sys.executable, "-u", "-m", "orchestrator.sweep", *workspace.args(*ARGS)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workspace.root)
    deadline = time.monotonic() + 240
    seen = []
    for line in process.stdout:  # wait until the first trial has finished, then press Ctrl-C
        seen.append(line)
        if line.startswith("[1/4]"):
            process.send_signal(signal.SIGINT)
            break
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no trial finished in 240 s:\n" + "".join(seen[-30:]))
    rest, _ = process.communicate(timeout=180)
    assert process.returncode == 130, "".join(seen) + rest
    assert "--resume" in rest

    _, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
    finished_before = {c.data.tags["ib.trial_id"] for c in children if c.info.status == "FINISHED"}
    assert 1 <= len(finished_before) < 4
    (run_dir,) = workspace.run_dirs("vib_digits")
    assert not (run_dir / "final.parquet").exists()

    # the spec changed since the sweep started: refused, naming the difference, nothing touched
    assert main(workspace.args(*ARGS, "--set", "lr=0.01", "--resume")) == 2
    assert "was started with another spec (config.lr: was 0.001, now 0.01)" in capsys.readouterr().err
    assert not (run_dir / "final.parquet").exists()

    assert main(workspace.args(*ARGS, "--resume")) == 0

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
