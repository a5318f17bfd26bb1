"""Cluster pre-flight: resources that can never be met, and storage every node must use."""

from __future__ import annotations

import pytest

from orchestrator.preflight import check_resources_can_be_met

pytestmark = pytest.mark.slow

NODES = [{"Alive": True, "Resources": {"CPU": 0.0}}, {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}},
         {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]


def test_a_request_some_live_node_fits_passes(tmp_path):
    check_resources_can_be_met(4, 1, nodes=NODES, autoscaler_config=tmp_path / "none.yaml")


def test_a_request_no_node_fits_is_refused_naming_the_largest(tmp_path):
    with pytest.raises(ValueError, match="no node of this cluster can ever hold a trial .the largest has 4 CPU, 1 GPU"):
        check_resources_can_be_met(4, 2, nodes=NODES, autoscaler_config=tmp_path / "none.yaml")


def test_node_types_the_autoscaler_may_add_count(tmp_path):
    config = tmp_path / "bootstrap.yaml"
    config.write_text("available_node_types:\n  big: {resources: {CPU: 96, GPU: 8}, node_config: {}}\n")
    check_resources_can_be_met(16, 4, nodes=NODES, autoscaler_config=config)


def test_cluster_preflight_runs_on_every_node_and_refuses_an_impossible_request(workspace):
    """Through the CLI against a head + 2 workers: the storage probe passes; 2 GPUs per trial is refused."""
    import subprocess
    import sys

    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    try:
        base = [sys.executable, "-m", "orchestrator.sweep",
                *workspace.args("vib_digits", "--smoke", "--address", cluster.address)]
        refused = subprocess.run([*base, "--gpus-per-trial", "2"], capture_output=True, text=True, timeout=180,
                                 cwd=workspace.root)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "error: --cpus-per-trial 1 --gpus-per-trial 2: no node of this cluster" in refused.stderr
        assert not workspace.run_dirs("vib_digits")  # nothing written
        ran = subprocess.run(base, capture_output=True, text=True, timeout=300, cwd=workspace.root)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert not list((workspace.storage / ".preflight").glob("*"))  # probe files cleaned up
    finally:
        cluster.shutdown()
