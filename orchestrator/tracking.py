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
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

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


# What MLflow 3.17's UI (mlflow/server/js/build) reads to open an experiment on its training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the UI's "Machine learning" kind; "genai_development" is traces
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: a saved runs-table view, opened by ?viewStateShareKey=key
UI_HOST = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


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


def _short_value(value: Any) -> str:
    """A swept value as a run name shows it: ``0.5``, ``32``, ``0.001``, ``1e-9``, ``256``, ``infonce``."""
    if isinstance(value, float):
        text = f"{value:.6g}"
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa}e{int(exponent)}" if exponent else text
    return str(value)


class MlflowTrackingCallback(tune.Callback):
    """Logs every trial of one sweep run to MLflow from the driver, on a delivery thread.

    Tune calls its callbacks on the driver's one loop, and a trial's ``report()`` waits until the
    driver has handled its result; an MLflow write there (a SQLite commit, an HTTP call) stalls
    every trial, and Ray warns that the callback is a bottleneck once a hook takes over 0.5 s. So
    each hook only appends an operation to an ordered queue, and a thread of this callback's own
    delivers the queue to MLflow: the parent run first, then the operations in order, consecutive
    epochs of one trial as one ``log_batch``. A failed delivery keeps the queue and retries with
    back-off; the queue is part of :meth:`get_state`, so operations not yet delivered survive a
    driver that dies; :meth:`on_experiment_end` waits for the queue to drain.

    Args:
        tracking_uri: where the MLflow store is.
        experiment: experiment name (the sweep's name).
        run_name: the Tune experiment's name; tags the parent run so a resume finds it.
        parent_tags: tags of the parent run (sweep, objective, git commit, command line, versions).
        parent_params: params of the parent run (the config the trials share).
        drain_timeout_s: how long the end of the sweep waits for an unreachable store.
        flush_results, flush_seconds: epoch metrics are delivered once this many operations are
            queued or this long after the last delivery (``flush_seconds=0``: every result at once);
            a trial's start and end are delivered at once.
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
        self._experiment_id: str | None = None
        self._restored: set[str] = set()  # trials whose run a restored state names, not yet read back
        self._reset_delivery()

    def _reset_delivery(self) -> None:
        """The delivery thread's state: never pickled, started again by :meth:`setup`."""
        self._client: MlflowClient | None = None
        self._lock = threading.Condition()  # guards the queue and the run ids; wakes the thread
        self._thread: threading.Thread | None = None
        self._parent_ready = False  # the experiment and the parent run exist in the store
        self._busy = False  # the thread is delivering
        self._draining = False  # the sweep ended: deliver everything, however young
        self._stopping = False
        self._retry_at = 0.0
        self._failures = 0
        self._delivered_at = 0.0

    # Tune pickles callbacks with the Tuner: the client, lock and thread stay in this process.
    def __getstate__(self) -> dict[str, Any]:
        keep = ("tracking_uri", "experiment", "run_name", "parent_tags", "parent_params", "drain_timeout_s",
                "flush_results", "flush_seconds", "parent_run_id", "trial_runs", "last_epoch", "pending",
                "_experiment_id")
        with self._lock:
            return {key: getattr(self, key) for key in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._restored = set()
        self._reset_delivery()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # ---- Tune's saved state: undelivered operations survive a driver restart ----------------
    def get_state(self) -> dict[str, Any]:
        with self._lock:  # the operation being delivered is still queued: saved, and sent again if need be
            return {"parent_run_id": self.parent_run_id, "trial_runs": dict(self.trial_runs),
                    "last_epoch": dict(self.last_epoch), "pending": list(self.pending)}

    def set_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.parent_run_id = state.get("parent_run_id")
            self.trial_runs = dict(state.get("trial_runs", {}))
            self.last_epoch = dict(state.get("last_epoch", {}))
            self.pending = list(state.get("pending", []))
            self._restored = set(self.trial_runs)

    # ---- Tune hooks: each queues an operation and returns ------------------------------------
    def setup(self, **info: Any) -> None:
        # Our queue retries; MLflow's own retries would hold up the queue for minutes meanwhile.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._start_delivery()  # the thread opens the parent run first

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
        """Queue the parent's end, then wait (up to ``drain_timeout_s``) until the queue is delivered."""
        # The sweep finished even if some trials failed (their runs say FAILED); an interrupted
        # sweep's parent is KILLED until --resume sets it RUNNING again.
        done = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._queue({"op": "parent_end", "failed": sum(t.status == "ERROR" for t in trials),
                     "status": "FINISHED" if done else "KILLED"})
        with self._lock:
            self._draining = True
            self._retry_at = 0.0  # the end of the sweep is worth one more try at once
            self._lock.notify_all()
            delivered = self._lock.wait_for(lambda: not self.pending, timeout=self.drain_timeout_s)
            self._stopping = True
            self._lock.notify_all()
            left = len(self.pending)
        if self._thread is not None:
            self._thread.join(timeout=0 if not delivered else 30)
        if left:
            logger.error("MLflow at %s stayed unreachable: %d operations were not delivered (the metrics are "
                         "in the parquet files and Tune's result.json)", self.tracking_uri, left)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until the thread has delivered what is due, or is backing off after a failure.

        False if it is still delivering after ``timeout_s``. Tune does not need this; tests and
        scripts that read MLflow while the sweep runs do.
        """
        with self._lock:
            return self._lock.wait_for(lambda: not self._busy and self._seconds_to_delivery() != 0.0,
                                       timeout=timeout_s)

    # ---- the delivery thread -----------------------------------------------------------------
    def _queue(self, operation: dict[str, Any]) -> None:
        with self._lock:
            self.pending.append(operation)
            self._lock.notify_all()
        self._start_delivery()

    def _start_delivery(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._deliver_forever, name="mlflow-delivery", daemon=True)
            self._thread.start()

    def _seconds_to_delivery(self) -> float | None:
        """0 when something is due now, else how long until it is (None: until an operation comes).

        Due: the parent run while it is not open; a queue with a trial's start or end in it, or
        with ``flush_results`` operations, or older than ``flush_seconds``; anything at the end.
        Never before a failed delivery's back-off has passed. Called with the lock held.
        """
        if self._parent_ready and not self.pending:
            return None
        now = time.monotonic()
        if now < self._retry_at:
            return self._retry_at - now
        if (not self._parent_ready or self._draining or len(self.pending) >= self.flush_results
                or any(operation["op"] != "log" for operation in self.pending)):
            return 0.0
        return max(0.0, self._delivered_at + self.flush_seconds - now) or 0.0

    def _deliver_forever(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and self._seconds_to_delivery() != 0.0:
                    self._busy = False
                    self._lock.notify_all()  # idle: wait_idle and the drain look again
                    self._lock.wait(self._seconds_to_delivery())
                if self._stopping:
                    self._busy = False
                    self._lock.notify_all()
                    return
                self._busy = True
            self._deliver()

    def _deliver(self) -> None:
        """Open the parent run if need be, then apply queued operations in order; on the first
        failure keep the rest and back off. Consecutive epoch logs of one trial go as one call."""
        self._delivered_at = time.monotonic()
        try:
            if not self._parent_ready:
                self._open_parent()
            while True:
                with self._lock:
                    if not self.pending:
                        break
                    count = self._batch_length()
                    batch = self.pending[:count]
                if batch[0]["op"] == "log":
                    self._apply_logs(batch)
                else:
                    self._apply(batch[0])
                with self._lock:
                    del self.pending[:count]
                    self._lock.notify_all()
                self._recovered()
            self._recovered()
        except Exception as error:  # the store is down or unreachable: keep everything, retry later
            with self._lock:
                self._failures += 1
                self._retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** min(self._failures, 6))
                first, queued = self._failures == 1, len(self.pending)
            if first:
                logger.warning("MLflow at %s is unreachable (%s); buffering %d operations and retrying",
                               self.tracking_uri, type(error).__name__, queued)

    def _recovered(self) -> None:
        if self._failures:
            logger.warning("MLflow at %s is reachable again; delivering buffered operations", self.tracking_uri)
            with self._lock:
                self._failures = 0
                self._retry_at = 0.0

    def _open_parent(self) -> None:
        """Find or create the experiment and this sweep run's parent run (RUNNING again on a resume)."""
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
        self._parent_ready = True

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
        with self._lock:
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
        """The trial's child run: known, found by tag, or created. A run known from a restored
        state is read once: Tune saves that state every few minutes, so the store may hold epochs
        the state does not count (a trial Tune reruns would otherwise log them twice)."""
        run_id = self.trial_runs.get(trial_id)
        if run_id is not None and trial_id not in self._restored:
            return run_id
        if run_id is not None:
            found = [self.client.get_run(run_id)]
        else:
            found = self.client.search_runs(
                [self._experiment_id],
                filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.`{PARENT_ID_TAG}` = '{self.parent_run_id}'",
                max_results=1,
            )
        if found:
            run = found[0]
            with self._lock:
                self.last_epoch[trial_id] = max(self.last_epoch.get(trial_id, 0),
                                                int(run.data.tags.get(LAST_EPOCH_TAG, 0)))
            if run.info.status != "RUNNING":
                self.client.update_run(run.info.run_id, status="RUNNING")
        else:
            tags = {PARENT_ID_TAG: self.parent_run_id, TRIAL_TAG: trial_id, "seed": str(config.get("seed")),
                    "mlflow.user": _user()}
            run = self.client.create_run(self._experiment_id, tags=tags, run_name=name)
        if not run.data.params:  # new, or created just before the store went down
            self.client.log_batch(run.info.run_id, params=[Param(k, _param(v)) for k, v in config.items()])
        with self._lock:
            self.trial_runs[trial_id] = run.info.run_id
            self._restored.discard(trial_id)
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


def _trial_name(trial, axes: Sequence[str] | None = None) -> str:
    """The child run's name: the trial's swept values, then its seed (``beta=0.5 latent_dim=2 seed=0``).

    ``axes`` in the sweep's order; by default the keys Tune swept (``evaluated_params``, which it
    sorts by name) in the order of the trial's config, which is the sweep spec's.
    """
    config = trial.config
    if axes is None:
        swept = set(getattr(trial, "evaluated_params", None) or {})
        axes = [key for key in config if key in swept]
    keys = [*(key for key in axes if key != "seed"), "seed"]
    label = " ".join(f"{key}={_short_value(config[key])}" for key in keys if key in config)
    return label or trial.trial_id


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
