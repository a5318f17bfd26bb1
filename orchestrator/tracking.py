"""MLflow tracking from the Tune driver: one parent run per sweep run, one child run per trial.

Only the driver writes to MLflow (SQLite allows one writer; trials never import MLflow). We do
not use Ray's ``MLflowLoggerCallback``: it opens a second run for every trial resumed by
``Tuner.restore`` (ray issue 48664) and logs the config as metrics. This callback saves its
state with the experiment (``get_state``/``set_state``) and, should that snapshot be older than
the MLflow store, finds its runs again by tag, so a resumed sweep continues the same runs and
logs no epoch twice.
"""

from __future__ import annotations

import getpass
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from orchestrator.masking import CHECKS as MASKING_CHECKS
from orchestrator.masking import explain as explain_check

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "ib.sweep_run"  # run name of the Tune experiment, on the parent run
TRIAL_TAG = "ib.trial_id"
LAST_EPOCH_TAG = "ib.last_epoch"
PARENT_ID_TAG = "mlflow.parentRunId"
MASKING_METRIC = "robust/masking_violations"
MASKING_PREFIX = "robust/masking_"
# Epoch metrics are delivered in batches: Tune's report() in the trial waits until the driver has
# handled the result, so one SQLite commit per epoch would slow every trial (docs/benchmarks.md).
FLUSH_RESULTS = 64  # deliver once this many operations are queued ...
FLUSH_SECONDS = 5.0  # ... or this long after the last delivery; trial starts and ends deliver at once
MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limit


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


def check_tracking(tracking_uri: str, experiment: str) -> str:
    """Create (or find) the experiment now, on the driver; ValueError if the store is unreachable.

    Creating it before any trial starts also avoids the creation race NOTES.md describes.
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
        if found is not None:
            return found.experiment_id
        return client.create_experiment(experiment, artifact_location=artifact_location(tracking_uri, experiment))
    except Exception as error:  # any failure to reach the store is the user's one-line error
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"tracking URI {tracking_uri!r} is unreachable: {first[:200]}") from error
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class MlflowTrackingCallback(tune.Callback):
    """Logs every trial of one sweep run to MLflow from the driver.

    Args:
        tracking_uri: where the MLflow store is.
        experiment: experiment name (the sweep's name).
        run_name: the Tune experiment's name; tags the parent run so a resume finds it.
        parent_tags: tags of the parent run (sweep, objective, git commit, command line, versions).
        parent_params: params of the parent run (the config the trials share).
        drain_timeout_s: how long the end of the sweep waits for an unreachable store.
        flush_results, flush_seconds: epoch metrics are delivered once this many operations are
            queued or this long after the last delivery (``flush_seconds=0``: every result at once).
    """

    def __init__(self, tracking_uri: str, experiment: str, run_name: str,
                 parent_tags: Mapping[str, str], parent_params: Mapping[str, Any],
                 drain_timeout_s: float = 600.0, flush_results: int = FLUSH_RESULTS,
                 flush_seconds: float = FLUSH_SECONDS):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.parent_tags = dict(parent_tags)
        self.parent_params = dict(parent_params)
        self.drain_timeout_s = drain_timeout_s
        self.flush_results, self.flush_seconds = flush_results, flush_seconds
        self.parent_run_id: str | None = None
        self.trial_runs: dict[str, str] = {}  # trial_id -> child run id
        self.last_epoch: dict[str, int] = {}  # trial_id -> last epoch logged
        self.pending: list[dict[str, Any]] = []  # operations not yet delivered, in order
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._delivered_at = 0.0

    # Tune pickles callbacks with the Tuner: keep the client out of the pickle.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # ---- Tune's saved state: undelivered operations survive a driver restart ----------------
    def get_state(self) -> dict[str, Any]:
        return {"parent_run_id": self.parent_run_id, "trial_runs": dict(self.trial_runs),
                "last_epoch": dict(self.last_epoch), "pending": list(self.pending)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.parent_run_id = state.get("parent_run_id")
        self.trial_runs = dict(state.get("trial_runs", {}))
        self.last_epoch = dict(state.get("last_epoch", {}))
        self.pending = list(state.get("pending", []))

    # ---- Tune hooks: each queues an operation, then delivers what it can ---------------------
    def setup(self, **info: Any) -> None:
        # Our queue retries; MLflow's own retries would block the Tune loop for minutes meanwhile.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._experiment_id = check_tracking(self.tracking_uri, self.experiment)
        if self.parent_run_id is None:
            self.parent_run_id = find_parent_run(self.tracking_uri, self._experiment_id, self.run_name)
        if self.parent_run_id is None:
            tags = {**self.parent_tags, PARENT_TAG: self.run_name, "mlflow.runName": self.run_name,
                    "mlflow.user": _user()}
            run = self.client.create_run(self._experiment_id, tags=tags, run_name=self.run_name)
            self.parent_run_id = run.info.run_id
            self.client.log_batch(self.parent_run_id, params=[Param(k, _param(v)) for k, v in self.parent_params.items()])
        else:
            self.client.update_run(self.parent_run_id, status="RUNNING")
        self._deliver()

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._queue({"op": "start", "trial": trial.trial_id, "config": dict(trial.config), "name": _trial_name(trial)})

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        metrics = {key: float(value) for key, value in result.items() if _is_metric(key, value)}
        self._queue({"op": "log", "trial": trial.trial_id, "config": dict(trial.config), "name": _trial_name(trial),
                     "epoch": epoch, "metrics": metrics, "time": int(time.time() * 1000)})

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._queue({"op": "end", "trial": trial.trial_id, "config": dict(trial.config), "name": _trial_name(trial),
                     "status": "FINISHED"})

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._queue({"op": "end", "trial": trial.trial_id, "config": dict(trial.config), "name": _trial_name(trial),
                     "status": "FAILED", "error": _trial_error(trial)[:5000]})

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # The sweep finished even if some trials failed (their runs say FAILED); an interrupted
        # sweep's parent is KILLED until --resume sets it RUNNING again.
        done = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._queue({"op": "parent_end", "failed": sum(t.status == "ERROR" for t in trials),
                     "status": "FINISHED" if done else "KILLED"})
        deadline = time.monotonic() + self.drain_timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._retry_at - time.monotonic(), deadline - time.monotonic())))
            self._deliver()
        if self.pending:
            logger.error("MLflow at %s stayed unreachable: %d operations were not delivered (the metrics are "
                         "in the parquet files and Tune's result.json)", self.tracking_uri, len(self.pending))

    # ---- delivery ----------------------------------------------------------------------------
    def _queue(self, operation: dict[str, Any]) -> None:
        """Queue ``operation``; deliver now unless it is an epoch's metrics and the batch is young.

        Queued operations are part of :meth:`get_state`, so holding a batch back loses nothing if
        the driver dies: Tune's saved state carries them into ``--resume``.
        """
        self.pending.append(operation)
        now = time.monotonic()
        due = (operation["op"] != "log" or len(self.pending) >= self.flush_results
               or now - self._delivered_at >= self.flush_seconds)
        if due and now >= self._retry_at:
            self._deliver()

    def _deliver(self) -> None:
        """Apply queued operations in order; on the first failure keep the rest and back off.

        Consecutive epoch logs of one trial go to MLflow as one ``log_batch``.
        """
        self._delivered_at = time.monotonic()
        while self.pending:
            count = self._batch_length()
            try:
                if self.pending[0]["op"] == "log":
                    self._apply_logs(self.pending[:count])
                else:
                    self._apply(self.pending[0])
            except Exception as error:  # the store is down or unreachable: keep everything, retry later
                self._failures += 1
                delay = min(30.0, 0.5 * 2 ** min(self._failures, 6))
                self._retry_at = time.monotonic() + delay
                if self._failures == 1:
                    logger.warning("MLflow at %s is unreachable (%s); buffering %d operations and retrying",
                                   self.tracking_uri, type(error).__name__, len(self.pending))
                return
            del self.pending[:count]
            if self._failures:
                logger.warning("MLflow at %s is reachable again; delivering buffered operations", self.tracking_uri)
                self._failures = 0
                self._retry_at = 0.0

    def _batch_length(self) -> int:
        """How many queued operations from the head are epoch logs of one trial fitting one call."""
        head = self.pending[0]
        if head["op"] != "log":
            return 1
        count, metrics = 0, 0
        for operation in self.pending:
            if operation["op"] != "log" or operation["trial"] != head["trial"]:
                break
            metrics += len(operation["metrics"])
            if count and metrics > MAX_METRICS_PER_CALL:
                break
            count += 1
        return count

    def _apply_logs(self, operations: list[dict[str, Any]]) -> None:
        """Several epochs of one trial in one ``log_batch``; epochs already logged are skipped."""
        head = operations[0]
        trial_id = head["trial"]
        run_id = self._child_run(trial_id, head["config"], head["name"])
        fresh = [o for o in operations if o["epoch"] > self.last_epoch.get(trial_id, 0)]
        if not fresh:
            return
        metrics = [Metric(k, v, o["time"], o["epoch"]) for o in fresh for k, v in o["metrics"].items()]
        last = max(o["epoch"] for o in fresh)
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(LAST_EPOCH_TAG, str(last)), *_masking_tags(fresh)])
        self.last_epoch[trial_id] = last

    def _apply(self, operation: dict[str, Any]) -> None:
        kind = operation["op"]
        if kind == "parent_end":
            self.client.set_tag(self.parent_run_id, "failed_trials", str(operation["failed"]))
            self.client.set_terminated(self.parent_run_id, status=operation["status"])
            return
        trial_id = operation["trial"]
        run_id = self._child_run(trial_id, operation["config"], operation["name"])
        if kind == "end":
            if "error" in operation:
                self.client.set_tag(run_id, "error", operation["error"])
            self.client.set_terminated(run_id, status=operation["status"])

    def _child_run(self, trial_id: str, config: Mapping[str, Any], name: str) -> str:
        if trial_id in self.trial_runs:
            return self.trial_runs[trial_id]
        found = self.client.search_runs(
            [self._experiment_id],
            filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.`{PARENT_ID_TAG}` = '{self.parent_run_id}'",
            max_results=1,
        )
        if found:
            run = found[0]
            self.last_epoch[trial_id] = int(run.data.tags.get(LAST_EPOCH_TAG, 0))
            if run.info.status != "RUNNING":
                self.client.update_run(run.info.run_id, status="RUNNING")
        else:
            tags = {PARENT_ID_TAG: self.parent_run_id, TRIAL_TAG: trial_id, "seed": str(config.get("seed")),
                    "mlflow.user": _user()}
            run = self.client.create_run(self._experiment_id, tags=tags, run_name=name)
        if not run.data.params:  # new, or created just before the store went down
            self.client.log_batch(run.info.run_id, params=[Param(k, _param(v)) for k, v in config.items()])
        self.trial_runs[trial_id] = run.info.run_id
        return run.info.run_id


def find_parent_run(tracking_uri: str, experiment_id: str, run_name: str) -> str | None:
    """The parent run of the sweep run ``run_name``, if one was created."""
    runs = MlflowClient(tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_name}'", max_results=1)
    return runs[0].info.run_id if runs else None


def log_artifacts(tracking_uri: str, run_id: str, directory: Path) -> None:
    """Attach the report files to the sweep's parent run."""
    MlflowClient(tracking_uri).log_artifacts(run_id, str(directory), artifact_path="reports")


def _masking_tags(operations: list[dict[str, Any]]) -> list[RunTag]:
    """The ``gradient_masking`` tag, from the last of ``operations`` that reports violated checks.

    Its value names each violated check and what the violation means (``robust/masking_<check>`` = 1).
    """
    flagged = [o["metrics"] for o in operations if o["metrics"].get(MASKING_METRIC, 0) > 0]
    if not flagged:
        return []
    metrics = flagged[-1]
    names = sorted(key.removeprefix(MASKING_PREFIX) for key, value in metrics.items()
                   if key.startswith(MASKING_PREFIX) and key.removeprefix(MASKING_PREFIX) in MASKING_CHECKS and value >= 0.5)
    explained = "; ".join(f"{name}: {explain_check(name)}" for name in names)
    text = f"suspected: {int(metrics[MASKING_METRIC])} check(s) violated" + (f" ({explained})" if explained else "")
    return [RunTag("gradient_masking", text[:5000])]


def _is_metric(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return "/" in key and not key.startswith("config/") or key in ("epoch", "lr", "time_total_s")


def _param(value: Any) -> str:
    return str(value)[:6000]


def _trial_name(trial) -> str:
    axes = getattr(trial, "evaluated_params", None) or {}
    label = ",".join(f"{k}={v}" for k, v in axes.items())
    return f"{trial.trial_id}" + (f" {label}" if label else "")


def _trial_error(trial) -> str:
    """The trial's error text. Tune writes it on the driver's disk first and syncs it to storage later."""
    for path in (trial.error_file, trial.pickled_error_file):
        if path and Path(path).is_file() and path.endswith(".txt"):
            return Path(path).read_text(errors="replace").strip()
    try:
        error = trial.get_error()
    except OSError:
        error = None
    return str(error).strip() if error else "trial failed (no error message recorded)"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"

