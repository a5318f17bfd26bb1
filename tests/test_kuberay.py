"""deploy/kubernetes/rayjob.yaml is a valid KubeRay RayJob and keeps to what the sweep needs.

No Kubernetes runs here, so the RayJob is checked as the API server would admit it: against the
openAPIV3Schema of KubeRay's RayJob CRD (deploy/kubernetes/ray.io_rayjobs.yaml, vendored from a
KubeRay release), with kubectl's strict field validation (an unknown field is an error, not
silently dropped) and the schema's ``x-kubernetes-*`` extensions that jsonschema does not know:
``nullable``, list types ``set`` and ``map`` (unique items, unique keys), and the CEL rules of
``x-kubernetes-validations``, which are checked to sit only on fields the manifest leaves out.
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from jsonschema import validators

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
MANIFEST = DEPLOY / "rayjob.yaml"
CRD = DEPLOY / "ray.io_rayjobs.yaml"
SHARED = "/mnt/ib-sweeps"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1.4 MB: libyaml reads it in 0.4 s


# ---- the CRD's schema as a strict validator -------------------------------------------------

def strict(schema: dict) -> dict:
    """The schema with unknown fields refused and ``nullable`` turned into a null type."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            if node.get("nullable") and "type" in node:
                node["type"] = [node["type"], "null"]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def _list_type(validator, list_type, instance, schema):
    """``x-kubernetes-list-type``: ``set`` items are unique, ``map`` items unique by their keys."""
    if not validator.is_type(instance, "array"):
        return
    if list_type == "set":
        seen = [repr(item) for item in instance]
        if len(seen) != len(set(seen)):
            yield jsonschema.ValidationError(f"duplicate items in a list of type set: {instance}")
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        item_schema = schema.get("items", {}).get("properties", {})
        seen = [tuple(item.get(k, item_schema.get(k, {}).get("default")) for k in keys)
                for item in instance if isinstance(item, dict)]
        for key in {k for k in seen if seen.count(k) > 1}:
            yield jsonschema.ValidationError(f"duplicate {dict(zip(keys, key))} in a list of type map keyed by {keys}")


KubernetesValidator = validators.extend(jsonschema.Draft7Validator, {"x-kubernetes-list-type": _list_type})


@pytest.fixture(scope="module")
def crd() -> dict:
    return yaml.load(CRD.read_text(), Loader=Loader)


@pytest.fixture(scope="module")
def validator(crd):
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return KubernetesValidator(strict(version["schema"]["openAPIV3Schema"]))


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def _one(documents, kind: str) -> dict:
    (found,) = [d for d in documents if d["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def rayjob(documents) -> dict:
    return _one(documents, "RayJob")


def _errors(validator, document) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_rayjob_validates_against_kuberays_crd(crd, validator, rayjob):
    group, version = rayjob["apiVersion"].split("/")
    assert group == crd["spec"]["group"] and rayjob["kind"] == crd["spec"]["names"]["kind"]
    assert version in [v["name"] for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    assert _errors(validator, rayjob) == []


def _worker_group(rayjob) -> dict:
    (group,) = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    return group


def _break_min_replicas(job):
    _worker_group(job)["minReplicas"] = "zero"


def _break_unknown_field(job):  # a misspelt field: the API server's strict validation refuses it
    _worker_group(job)["idleTimeoutSecond"] = 60


def _break_required_field(job):
    del _worker_group(job)["groupName"]


def _break_duplicate_container(job):
    containers = _head(job)["template"]["spec"]["containers"]
    containers.append(copy.deepcopy(containers[0]))


def _break_quantity(job):
    _worker_group(job)["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "16 GB"


@pytest.mark.parametrize("breakage, message", [
    (_break_min_replicas, "'zero' is not of type 'integer'"),
    (_break_unknown_field, "'idleTimeoutSecond' was unexpected"),
    (_break_required_field, "'groupName' is a required property"),
    (_break_duplicate_container, "duplicate {'name': 'ray-head'} in a list of type map"),
    (_break_quantity, "'16 GB' does not match"),
])
def test_a_broken_rayjob_fails_the_validation(validator, rayjob, breakage, message):
    broken = copy.deepcopy(rayjob)
    breakage(broken)
    errors = _errors(validator, broken)
    assert len(errors) == 1 and message in errors[0], errors


def test_the_crds_cel_rules_sit_on_fields_the_rayjob_leaves_out(crd, rayjob):
    """jsonschema cannot run ``x-kubernetes-validations`` (CEL): none may apply to this manifest."""
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    ruled = []

    def visit(node, path):
        if isinstance(node, dict):
            if "x-kubernetes-validations" in node:
                ruled.append(path)
            for key, value in node.get("properties", {}).items():
                visit(value, (*path, key))
            if "items" in node:
                visit(node["items"], (*path, "[]"))

    visit(version["schema"]["openAPIV3Schema"], ())
    assert ruled  # the walk found them (this CRD has some)

    def present(document, path) -> bool:
        if not path:
            return True
        if path[0] == "[]":
            return isinstance(document, list) and any(present(item, path[1:]) for item in document)
        return isinstance(document, dict) and path[0] in document and present(document[path[0]], path[1:])

    assert [path for path in ruled if present(rayjob, path)] == []


# ---- what this project relies on -------------------------------------------------------------

def _head(rayjob) -> dict:
    return rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]


def _container(pod_spec: dict, name: str, section: str = "containers") -> dict:
    (found,) = [c for c in pod_spec.get(section, []) if c["name"] == name]
    return found


def test_the_head_runs_no_trials(rayjob):
    head = _head(rayjob)
    assert head["rayStartParams"]["num-cpus"] == "0"
    ray_head = _container(head["template"]["spec"], "ray-head")
    assert "nvidia.com/gpu" not in ray_head["resources"].get("limits", {})


def test_gpu_workers_scale_from_zero(rayjob):
    spec = rayjob["spec"]["rayClusterSpec"]
    group = _worker_group(rayjob)
    assert spec["enableInTreeAutoscaling"] is True
    assert group["minReplicas"] == 0 and group["replicas"] == 0 and group["maxReplicas"] >= 1
    (worker,) = group["template"]["spec"]["containers"]
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == worker["resources"]["limits"]["nvidia.com/gpu"]


def test_the_preflight_sees_the_gpu_worker_group(documents, rayjob):
    """The node types given to the sweep's pre-flight check are the worker group's resources."""
    config_map = _one(documents, "ConfigMap")
    node_types = yaml.safe_load(config_map["data"]["ray_bootstrap_config.yaml"])["available_node_types"]
    group = _worker_group(rayjob)
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert node_types == {group["groupName"]: {"resources": {"CPU": int(limits["cpu"]),
                                                             "GPU": int(limits["nvidia.com/gpu"])}}}
    head_spec = _head(rayjob)["template"]["spec"]
    (volume,) = [v for v in head_spec["volumes"] if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]]
    mounts = {m["name"]: m for m in _container(head_spec, "ray-head")["volumeMounts"]}
    assert mounts[volume["name"]]["mountPath"] == "/home/ray/ray_bootstrap_config.yaml"


def _entrypoint(rayjob) -> list[str]:
    return shlex.split(rayjob["spec"]["entrypoint"])


def _option(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def test_the_entrypoint_is_the_sweep_on_the_cluster(rayjob):
    words = _entrypoint(rayjob)
    assert words[:3] == ["python", "-m", "orchestrator.sweep"] and not words[3].startswith("-")
    assert _option(words, "--address") == "auto"
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True and rayjob["spec"].get("backoffLimit", 0) == 0


def test_every_pod_mounts_the_shared_claim_at_one_path_used_as_storage(documents, rayjob):
    claim = _one(documents, "PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    head_spec = _head(rayjob)["template"]["spec"]
    pods = {"head": (head_spec, [*head_spec["containers"], *head_spec["initContainers"]]),
            "worker": (_worker_group(rayjob)["template"]["spec"], _worker_group(rayjob)["template"]["spec"]["containers"])}
    for where, (pod, containers) in pods.items():
        (volume,) = [v for v in pod["volumes"] if v.get("persistentVolumeClaim")]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"], where
        for container in containers:
            paths = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume["name"]]
            assert paths == [SHARED], (where, container["name"])
    words = _entrypoint(rayjob)
    assert _option(words, "--storage").startswith(SHARED + "/") and _option(words, "--data-dir").startswith(SHARED + "/")


def test_mlflow_is_a_sidecar_on_localhost_only(documents, rayjob):
    head = _head(rayjob)
    sidecar = _container(head["template"]["spec"], "mlflow", section="initContainers")
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: runs beside the head for the pod's life
    server = shlex.split(sidecar["command"][-1].split("exec ", 1)[1])
    assert server[:2] == ["mlflow", "server"] and _option(server, "--host") == "127.0.0.1"
    port = _option(server, "--port")
    assert set(_option(server, "--allowed-hosts").split(",")) == {f"localhost:{port}", f"127.0.0.1:{port}"}
    assert _option(server, "--backend-store-uri").startswith(f"sqlite:///{SHARED}/")
    assert _option(server, "--artifacts-destination").startswith(SHARED + "/")
    assert _option(_entrypoint(rayjob), "--tracking-uri") == f"http://127.0.0.1:{port}"
    # nothing publishes it, or Ray, outside the cluster
    assert head["serviceType"] == "ClusterIP" and not head.get("enableIngress")
    assert [d["kind"] for d in documents if d["kind"] in ("Service", "Ingress", "Route")] == []


def test_ray_uses_token_auth_from_a_secret(rayjob):
    spec = rayjob["spec"]["rayClusterSpec"]
    secret = spec["authOptions"]["secretName"]
    assert spec["authOptions"]["mode"] == "token" and secret
    ray_containers = [_container(_head(rayjob)["template"]["spec"], "ray-head"),
                      *_worker_group(rayjob)["template"]["spec"]["containers"]]
    for container in ray_containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "auth_token"}


def test_the_ray_version_is_the_projects(rayjob):
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == ray.__version__
