"""cluster.yaml is valid for `ray up` and keeps the cluster locked down."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_validates_against_rays_cluster_schema(config):
    """What `ray up` does first: fill in the provider's defaults, then validate against ray-schema.json."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_schema_validation_can_fail(config):
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = {**config, "available_node_types": {**config["available_node_types"], "gpu_worker": {
        **config["available_node_types"]["gpu_worker"], "min_workers": "zero"}}}
    with pytest.raises(Exception, match="zero"):
        validate_config(prepare_config(broken))


def test_head_runs_no_trials_and_gpu_workers_scale_from_zero(config):
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert nodes["gpu_worker"]["min_workers"] == 0 and nodes["gpu_worker"]["max_workers"] <= config["max_workers"]


def test_ray_uses_token_auth_and_no_public_dashboard(config):
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token ray start --head" in head and "RAY_AUTH_MODE=token ray start --address" in workers
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_mlflow_listens_privately_with_allowed_hosts(config):
    head = " ".join(config["head_start_ray_commands"])
    assert "mlflow server --host $PRIVATE_IP" in head and "--allowed-hosts" in head
    assert "sqlite:///" in head and "--artifacts-destination /mnt/ib-sweeps/" in head


def test_every_node_mounts_the_shared_storage(config):
    assert any("mount -t nfs4" in c and "/mnt/ib-sweeps" in c for c in config["setup_commands"])
    assert any("IB_STORAGE=/mnt/ib-sweeps/" in c for c in config["setup_commands"])


def test_the_project_is_installed_from_the_synced_tree(config):
    assert config["file_mounts"]["~/ib-sweeps"] == "."
    assert any("pip install -q -e ~/ib-sweeps" in c for c in config["setup_commands"])
