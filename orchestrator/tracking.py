"""MLflow for the Tune driver: the store, the sweep's parent run, and the UI's link to its trials.

Only the driver writes to MLflow (SQLite allows one writer; trials never import MLflow). Each sweep
is an experiment, each run of it a parent run (tagged ``ib.sweep_run``), each trial a child run;
``orchestrator.mlflow_callback`` logs the trials while Tune runs them. Here: checking the store
before Ray starts, finding the parent run, attaching the reports, marking an interrupted run
KILLED, and the link that opens its trials in the UI.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from mlflow.tracking import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "ib.sweep_run"  # run name of the Tune experiment, on the parent run
PARENT_ID_TAG = "mlflow.parentRunId"


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else SQLite in the working directory (made absolute)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    return uri


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For a SQLite store, artifacts sit beside the database; a server chooses its own."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts" / experiment).as_uri()
    return None


# What MLflow 3.17's UI (mlflow/server/js/build) reads to open an experiment on its training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the UI's "Machine learning" kind; "genai_development" is traces
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: a saved runs-table view, opened by ?viewStateShareKey=key
UI_HOST = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def check_tracking(tracking_uri: str, experiment: str) -> str:
    """Create (or find) the experiment now, on the driver; ValueError if the store is unreachable.

    Creating it before any trial starts also avoids the creation race of concurrent processes
    (../shared/NOTES.md, section "MLflow 3.17").
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in ("sqlite", "http", "https", "postgresql", "mysql", "databricks"):
        raise ValueError(
            f"tracking URI {tracking_uri!r}: expected sqlite:///PATH, http(s)://HOST:PORT or a database URL"
        )
    if parsed.scheme == "sqlite":
        directory = Path(tracking_uri[len("sqlite:///") :]).parent
        if not directory.is_dir() or not os.access(directory, os.W_OK):
            raise ValueError(f"tracking URI {tracking_uri!r}: directory {directory} does not exist or is not writable")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
    try:
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return client.create_experiment(experiment, artifact_location=artifact_location(tracking_uri, experiment),
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        if EXPERIMENT_KIND_TAG not in found.tags:  # an experiment made before the tag; a kind set by hand stays
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    except Exception as error:  # any failure to reach the store is the user's one-line error
        raise ValueError(f"tracking URI {tracking_uri!r} is unreachable: {_unreachable_reason(error)}") from error
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def runs_url(experiment_id: str, host: str = UI_HOST, view: str | None = None) -> str:
    """The MLflow UI page with the experiment's training runs, in the saved ``view`` if given.

    In MLflow 3.17 ``#/experiments/ID`` opens the GenAI overview (traces; no runs) for every browser
    whose "GenAI / Model training" switch is on its default, GenAI: the experiment page follows that
    switch, not the experiment's tag. The ``/runs`` route with ``workflowType=machine_learning``
    opens the runs table in the model-training layout whatever the switch says, without changing it.
    ``view`` is a key returned by :func:`save_runs_view`.
    """
    url = f"{host.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return url + (f"&viewStateShareKey={quote(view, safe='')}" if view else "")


def save_runs_view(tracking_uri: str, experiment_id: str, parent_run_id: str, axes: Sequence[str],
                   metrics: Sequence[str], mode: str = "max") -> str:
    """Save a runs-table view of one sweep run in its experiment; the key to pass to :func:`runs_url`.

    The view lists that run's trials only (filtered on their parent), with a column per swept axis,
    the seed and each of ``metrics``, best ``metrics[0]`` first (``mode``: ``max`` or ``min``). It is
    what the UI's own "share view" saves: the experiment tag ``mlflow.sharedViewState.<key>``, a JSON
    of search facets and table state, read when the URL carries ``viewStateShareKey=<key>``. The key
    is the parent run's id, so a resumed sweep saves the same view again.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode {mode!r}: expected 'max' or 'min'")
    state: dict[str, Any] = {
        "searchFilter": f"tags.`{PARENT_ID_TAG}` = '{parent_run_id}'",
        "selectedColumns": [*(f"params.`{axis}`" for axis in [*axes, "seed"]),
                            *(f"metrics.`{metric}`" for metric in metrics)],
    }
    if metrics:
        state.update(orderByKey=f"metrics.`{metrics[0]}`", orderByAsc=mode == "min")
    MlflowClient(tracking_uri).set_experiment_tag(experiment_id, SHARED_VIEW_TAG + parent_run_id, json.dumps(state))
    return parent_run_id


def _unreachable_reason(error: BaseException, limit: int = 160) -> str:
    """Why the tracking store could not be reached, in a few words, on one line.

    MLflow's HTTP error wraps requests', which wraps urllib3's, which wraps the socket's; each
    message repeats the URL, so the first line of the outermost one ends in the middle of a URL.
    The innermost operating-system reason ("Connection refused", "Name or service not known") says
    it all; otherwise the innermost message, an HTTP status, or the error's type.
    """
    chain = [error]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    for cause in reversed(chain):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    text = " ".join(str(chain[-1]).split())
    status = re.search(r"error code (\d{3})", text)
    if status:
        return f"the server answered HTTP {status.group(1)}"
    if not text:
        return type(chain[-1]).__name__
    return text if len(text) <= limit else text[: limit - 4].rsplit(" ", 1)[0] + " ..."


def find_parent_run(tracking_uri: str, experiment_id: str, run_name: str) -> str | None:
    """The parent run of the sweep run ``run_name``, if one was created."""
    runs = MlflowClient(tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_name}'", max_results=1)
    return runs[0].info.run_id if runs else None


def log_artifacts(tracking_uri: str, run_id: str, directory: Path) -> None:
    """Attach the report files to the sweep's parent run."""
    MlflowClient(tracking_uri).log_artifacts(run_id, str(directory), artifact_path="reports")


def log_claims(tracking_uri: str, run_id: str, run_dir: Path) -> None:
    """The parent run's ``claims`` tag (verdict counts, e.g. "3 hold, 1 fail, 2 inconclusive") and claims.parquet."""
    import pyarrow.parquet as pq

    from orchestrator.claims import CLAIMS_FILE, claims_summary

    path = Path(run_dir) / CLAIMS_FILE
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, "claims", claims_summary(pq.read_table(path).to_pandas()))
    client.log_artifact(run_id, str(path), artifact_path="claims")


def mark_interrupted(tracking_uri: str, experiment_id: str, run_name: str) -> int:
    """Mark an interrupted sweep run KILLED: its parent run and every child run still RUNNING.

    The driver calls it after an interrupted ``Tuner.fit``: Tune ends no run of a trial it
    stopped, and its experiment end counts those trials as terminated, so without this the
    parent would read FINISHED and the stopped trials RUNNING forever. On ``--resume`` the
    tracking callback sets the parent RUNNING again, and each child ends FINISHED or FAILED with
    its trial. Returns how many runs it marked (0 if the sweep run has no parent run yet).
    """
    parent = find_parent_run(tracking_uri, experiment_id, run_name)
    if parent is None:
        return 0
    client = MlflowClient(tracking_uri)
    running, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token,
                                  filter_string=f"tags.`{PARENT_ID_TAG}` = '{parent}' and attributes.status = 'RUNNING'")
        running += [run.info.run_id for run in page]
        token = page.token
        if not token:
            break
    for run_id in running:
        client.set_terminated(run_id, status="KILLED")
    client.set_terminated(parent, status="KILLED")
    return len(running) + 1
