"""Checks against a running Ray cluster before a sweep writes anything.

A sweep on a cluster fails late and expensively if a worker cannot reach the storage (Ray needs
one path every node reads and writes) or if no node can ever hold a trial (the trials wait
forever). Both are checked once, on the driver, right after ``ray.init``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import ray
import yaml
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml")  # written by `ray up` on the head node


def check_resources_can_be_met(cpus: float, gpus: float, *, nodes: list[dict[str, Any]] | None = None,
                               autoscaler_config: Path = AUTOSCALER_CONFIG) -> None:
    """ValueError unless some live node, or some node type the autoscaler may add, fits one trial."""
    shapes = [dict(n["Resources"]) for n in (nodes if nodes is not None else ray.nodes()) if n.get("Alive")]
    path = autoscaler_config.expanduser()
    if path.is_file():
        types = (yaml.safe_load(path.read_text()) or {}).get("available_node_types", {})
        shapes += [dict(t.get("resources", {})) for t in types.values()]
    if any(s.get("CPU", 0) >= cpus and s.get("GPU", 0) >= gpus for s in shapes):
        return
    largest = max(shapes, key=lambda s: (s.get("GPU", 0), s.get("CPU", 0)), default={})
    raise ValueError(f"--cpus-per-trial {cpus:g} --gpus-per-trial {gpus:g}: no node of this cluster can ever hold a "
                     f"trial (the largest has {largest.get('CPU', 0):g} CPU, {largest.get('GPU', 0):g} GPU)")


@ray.remote(num_cpus=0)
def _probe(storage: str, token: str) -> str | None:
    """On one node: read the driver's probe file and write this node's own; None if both work."""
    import socket

    directory = Path(storage) / ".preflight"
    try:
        if (directory / f"{token}.driver").read_text() != token:
            return f"{socket.gethostname()}: the probe file has other contents"
        (directory / f"{token}.{ray.get_runtime_context().get_node_id()}").write_text(token)
    except OSError as error:
        return f"{socket.gethostname()}: {type(error).__name__}: {error}"
    return None


def check_storage_on_every_node(storage: Path, timeout_s: float = 120.0) -> None:
    """ValueError naming the first live node that cannot read and write ``storage``."""
    token = uuid.uuid4().hex
    directory = storage / ".preflight"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{token}.driver").write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        futures = [_probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                   .remote(str(storage), token) for n in nodes]
        for node, problem in zip(nodes, ray.get(futures, timeout=timeout_s)):
            if problem:
                raise ValueError(f"--storage {storage}: node {node['NodeManagerAddress']} cannot use it ({problem}); "
                                 "on a cluster, pass a path every node mounts (see docs/distributed.md)")
    finally:
        for path in directory.glob(f"{token}.*"):
            path.unlink(missing_ok=True)
