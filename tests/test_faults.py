"""Faults survived with nothing lost (docs/reliability.md).

"Nothing lost": afterwards every trial of the grid appears exactly once in MLflow and in the
parquet files, its per-epoch metrics are contiguous, and its final metrics in parquet equal the
last ones MLflow holds. Each test runs the real CLI in a subprocess (its own local Ray) or
against a multi-node ``ray.cluster_utils.Cluster``; the MLflow tests use a real ``mlflow server``
on loopback over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import metric_steps, mlflow_runs, read_tables

pytestmark = pytest.mark.slow

BETAS = "beta=[0.001, 0.01, 0.1, 1.0]"


def sweep_command(workspace, *extra: str, tracking_uri: str | None = None) -> list[str]:
    # checkpoints at the epochs the tests name, however short the epochs
    args = workspace.args("vib_digits", "--smoke", "--set", BETAS, "--set", "checkpoint_min_seconds=0", *extra)
    if tracking_uri:
        i = args.index("--tracking-uri")
        args[i + 1] = tracking_uri
    return [sys.executable, "-u", "-m", "orchestrator.sweep", *args]


def assert_nothing_lost(workspace, tracking_uri: str, trials: int, epochs: int) -> None:
    (run_dir,) = workspace.run_dirs("vib_digits")
    epochs_table, final = read_tables(run_dir)
    assert len(final) == trials and set(final["status"]) == {"TERMINATED"}, final[["status", "error"]]
    assert len(epochs_table) == trials * epochs and not epochs_table.duplicated(["trial_id", "epoch"]).any()
    parents, children = mlflow_runs(tracking_uri, "vib_digits")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == trials and {c.data.tags["ib.trial_id"] for c in children} == set(final["trial_id"])
    for child in children:
        assert child.info.status == "FINISHED"
        assert metric_steps(tracking_uri, child.info.run_id, "test/acc") == list(range(1, epochs + 1))
        row = final[final["trial_id"] == child.data.tags["ib.trial_id"]].iloc[0]
        assert child.data.metrics["test/acc"] == pytest.approx(row["test/acc"])
        assert child.data.metrics["train/loss"] == pytest.approx(row["train/loss"])


def test_a_trial_that_raises_is_retried_from_its_last_checkpoint(workspace):
    fault = {"raise_at_epoch": 3, "marker_dir": str(workspace.root / "faults")}
    env = {**os.environ, "IB_SWEEPS_FAULT": json.dumps(fault)}
    done = subprocess.run(sweep_command(workspace, "--epochs", "4", "--set", "checkpoint_every=1"),
                          capture_output=True, text=True, timeout=300, env=env, cwd=workspace.root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(list((workspace.root / "faults").glob("*.raised"))) == 4  # every trial failed once
    assert_nothing_lost(workspace, workspace.tracking_uri, trials=4, epochs=4)
    _, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
    for child in children:  # each retry resumed from the epoch-2 checkpoint, not from scratch
        assert child.data.metrics["trial/resumed_from_epoch"] == 2
    epochs_table, _ = read_tables(workspace.run_dirs("vib_digits")[0])
    assert sorted(epochs_table["trial/resumed_from_epoch"].dropna()) == [2, 2, 2, 2]


def test_a_killed_driver_is_finished_by_resume(workspace):
    command = sweep_command(workspace, "--epochs", "3", "--max-concurrent", "1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=workspace.root, start_new_session=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("[2/4]"):
            break
    else:
        pytest.fail("the sweep ended before two trials finished:\n" + "".join(seen[-30:]))
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its local Ray, mid-sweep, no clean-up
    process.wait(timeout=30)
    (run_dir,) = workspace.run_dirs("vib_digits")
    assert not (run_dir / "final.parquet").exists()

    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300, cwd=workspace.root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_nothing_lost(workspace, workspace.tracking_uri, trials=4, epochs=3)


def kill_node(cluster, node) -> None:
    """The node's machine dies: SIGKILL its worker processes (children of its raylet), then the node.

    ``remove_node`` alone kills the raylet but not the workers it started; a trial actor, which
    reports to the driver directly, then ran on to its end unnoticed in about half the runs.
    """
    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    workers = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == raylet:
                workers.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cluster.remove_node(node, allow_graceful=False)


def test_a_killed_worker_node_loses_nothing(workspace):
    """Head (no CPUs, runs no trials) + two one-CPU worker nodes; one worker dies mid-sweep."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    try:
        # 60 epochs, checkpoint every 5; the node dies once both running trials have passed epoch 10,
        # so the one on it has a checkpoint to go on from. (Waiting for the first trial alone raced:
        # the other one, started a second later, could be killed before its first checkpoint.)
        command = sweep_command(workspace, "--epochs", "60", "--set", "checkpoint_every=5",
                                "--address", cluster.address)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   cwd=workspace.root)
        deadline = time.monotonic() + 120
        def past_second_checkpoint() -> int:  # Tune keeps the newest 2 checkpoints, so look at any index >= 1
            return sum(any(int(c.name.rsplit("_", 1)[1]) >= 1 for c in trial.glob("checkpoint_*"))
                       for trial in workspace.storage.glob("vib_digits_*/train_*"))

        while past_second_checkpoint() < 2:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("two trials did not reach their second checkpoint:\n" + process.stdout.read()[-3000:])
            time.sleep(0.2)
        kill_node(cluster, workers[0])
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out[-3000:]
    finally:
        cluster.shutdown()
    assert_nothing_lost(workspace, workspace.tracking_uri, trials=4, epochs=60)
    # the replayed epochs are the ones kept in parquet (MLflow keeps the first, identical, values)
    epochs_table, _ = read_tables(workspace.run_dirs("vib_digits")[0])
    resumed = epochs_table["trial/resumed_from_epoch"].dropna() if "trial/resumed_from_epoch" in epochs_table else []
    assert len(resumed) >= 1 and (resumed >= 5).all(), out[-3000:]  # went on from a checkpoint


# ---- a real MLflow server on loopback -------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite store; can be stopped and started again."""

    def __init__(self, root: Path):
        self.root, self.port, self.process = root, _free_port(), None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--default-artifact-root", str(self.root / "artifacts"), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import urllib.request

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not come up in 90 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_mlflow_down_for_30_seconds_loses_no_metric(workspace, mlflow_server):
    process = subprocess.Popen(sweep_command(workspace, "--epochs", "20", "--max-concurrent", "2",
                                             tracking_uri=mlflow_server.uri),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workspace.root)
    deadline = time.monotonic() + 120
    while True:  # wait until metrics are flowing, then take the server away
        _, children = mlflow_runs(mlflow_server.uri, "vib_digits")
        if any(c.data.metrics for c in children):
            break
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("no metric reached the server:\n" + process.stdout.read()[-3000:])
        time.sleep(0.3)
    mlflow_server.stop()
    time.sleep(30)
    mlflow_server.start()
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-3000:]
    assert_nothing_lost(workspace, mlflow_server.uri, trials=4, epochs=20)


def test_sixteen_concurrent_trials_deliver_every_metric(workspace, mlflow_server):
    """16 trials at once, each reporting every few hundred milliseconds for about half a minute."""
    betas = json.dumps([round(0.001 * (i + 1), 4) for i in range(16)])
    command = [sys.executable, "-u", "-m", "orchestrator.sweep",
               *workspace.args("vib_digits", "--smoke", "--set", f"beta={betas}", "--epochs", "60",
                               "--set", "train_subset=200", "--set", "test_subset=100", "--set", "checkpoint_every=20",
                               "--cpus-per-trial", "0.125", "--max-concurrent", "16")]
    command[command.index("--tracking-uri") + 1] = mlflow_server.uri
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workspace.root)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = workspace.run_dirs("vib_digits")
    epochs_table, final = read_tables(run_dir)
    assert len(final) == 16 and len(epochs_table) == 16 * 60
    metrics_per_epoch = sum(1 for c in epochs_table.columns if c.startswith(("train/", "test/")))
    _, children = mlflow_runs(mlflow_server.uri, "vib_digits")
    assert len(children) == 16
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    delivered = sum(len(client.get_metric_history(c.info.run_id, key)) for c in children
                    for key in epochs_table.columns if key.startswith(("train/", "test/")))
    assert delivered == 16 * 60 * metrics_per_epoch
    print(f"16 trials x 60 epochs: {delivered} metric values delivered in {elapsed:.0f} s")
