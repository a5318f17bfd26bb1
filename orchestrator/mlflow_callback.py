"""The Tune callback that logs every trial of a sweep run to MLflow, from the driver.

We do not use Ray's ``MLflowLoggerCallback``: it opens a second run for every trial resumed by
``Tuner.restore`` (ray issue 48664) and logs the config as metrics. This callback saves its
state with the experiment (``get_state``/``set_state``) and, should that snapshot be older than
the MLflow store, finds its runs again by tag, so a resumed sweep continues the same runs and
logs no epoch twice.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from orchestrator.masking import CHECKS as MASKING_CHECKS
from orchestrator.masking import explain as explain_check
from orchestrator.tracking import PARENT_ID_TAG, PARENT_TAG, check_tracking, find_parent_run

logger = logging.getLogger(__name__)

TRIAL_TAG = "ib.trial_id"
LAST_EPOCH_TAG = "ib.last_epoch"
MASKING_METRIC = "robust/masking_violations"
MASKING_PREFIX = "robust/masking_"
# Epoch metrics are delivered in batches: Tune's report() in the trial waits until the driver has
# handled the result, so one SQLite commit per epoch would slow every trial (docs/benchmarks.md,
# section "Sweep overhead").
FLUSH_RESULTS = 64  # deliver once this many operations are queued ...
FLUSH_SECONDS = 5.0  # ... or this long after the last delivery; trial starts and ends deliver at once
MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limit


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

    # Where a resumed sweep logs: the resuming command's --tracking-uri, set by the driver before Tune unpickles the
    # callback, since the same store can have another address now (a Slurm job's head on another node).
    resume_tracking_uri: ClassVar[str | None] = None

    # Tune pickles callbacks with the Tuner: the client, lock and thread stay in this process.
    def __getstate__(self) -> dict[str, Any]:
        keep = ("tracking_uri", "experiment", "run_name", "parent_tags", "parent_params", "drain_timeout_s",
                "flush_results", "flush_seconds", "parent_run_id", "trial_runs", "last_epoch", "pending",
                "_experiment_id")
        with self._lock:
            return {key: getattr(self, key) for key in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.tracking_uri = MlflowTrackingCallback.resume_tracking_uri or self.tracking_uri
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
                    "objective": str(config.get("objective")),  # a zoo's children filter by it: tags.objective = 'vib'
                    "mlflow.user": _user()}
            run = self.client.create_run(self._experiment_id, tags=tags, run_name=name)
        if not run.data.params:  # new, or created just before the store went down
            self.client.log_batch(run.info.run_id, params=[Param(k, _param(v)) for k, v in config.items()])
        with self._lock:
            self.trial_runs[trial_id] = run.info.run_id
            self._restored.discard(trial_id)
        return run.info.run_id


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
