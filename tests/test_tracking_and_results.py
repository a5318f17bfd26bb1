"""The MLflow callback and the parquet rows, driven with stand-in Tune trials and results."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from orchestrator.masking import CHECKS as MASKING_CHECKS
from orchestrator.results import read_sweep_metadata, trial_rows, write_results
from orchestrator.mlflow_callback import MlflowTrackingCallback
from orchestrator.tracking import resolve_tracking_uri
from tests.helpers import metric_steps, mlflow_runs


def _trial(trial_id: str, beta: float, status: str = "RUNNING"):
    return SimpleNamespace(trial_id=trial_id, config={"beta": beta, "seed": 0, "epochs": 3}, status=status,
                           evaluated_params={"beta": beta}, error_file=None, pickled_error_file=None,
                           get_error=lambda: None, path="/nowhere", last_result={})


def _callback(uri: str, **options) -> MlflowTrackingCallback:
    """Delivers every result at once unless ``options`` say otherwise (batching has its own test)."""
    return MlflowTrackingCallback(uri, "exp", "exp_run1", {"sweep": "exp"}, {"lr": 0.1},
                                  **{"flush_seconds": 0.0, **options})


def _result(epoch: int, acc: float) -> dict:
    return {"epoch": epoch, "test/acc": acc, "train/loss": 1.0 / epoch, "config/beta": 0.1, "done": False,
            "trial_id": "x", "training_iteration": epoch}


def test_a_callback_that_lost_its_state_continues_the_same_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_trial("t1", 0.1), _trial("t2", 1.0)]
    first = _callback(uri)
    first.setup()
    for trial in trials:
        first.on_trial_start(0, trials, trial)
    first.on_trial_result(0, trials, trials[0], _result(1, 0.5))
    first.on_trial_result(0, trials, trials[0], _result(2, 0.6))
    first.on_trial_complete(0, trials, trials[1])
    first.wait_idle()  # delivered (on the callback's thread) before the driver "dies"

    second = _callback(uri)  # a new driver with no saved state: finds its runs by tag
    second.setup()
    for epoch, acc in ((1, 0.5), (2, 0.6), (3, 0.7)):  # the trial restarts and replays epochs 1-2
        second.on_trial_result(0, trials, trials[0], _result(epoch, acc))
    second.on_trial_complete(0, trials, trials[0])
    second.on_experiment_end([_trial("t1", 0.1, "TERMINATED"), _trial("t2", 1.0, "TERMINATED")])

    parents, children = mlflow_runs(uri, "exp")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.params == {"lr": "0.1"}
    assert len(children) == 2
    t1 = next(c for c in children if c.data.tags["ib.trial_id"] == "t1")
    assert metric_steps(uri, t1.info.run_id, "test/acc") == [1, 2, 3]
    assert "config/beta" not in t1.data.metrics and "done" not in t1.data.metrics
    assert t1.data.params["beta"] == "0.1"


def test_a_violated_masking_check_tags_the_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_trial("t1", 0.1), _trial("t2", 1.0)]
    callback = _callback(uri)
    callback.setup()
    violated = {"robust/masking_violations": 2.0, "robust/masking_checks": 3.0, "robust/masking_gradient_nonzero": 1.0,
                "robust/masking_cw_succeeds": 1.0, "robust/masking_pgd_monotone_in_steps": 0.0}
    callback.on_trial_result(0, trials, trials[0], {**_result(3, 0.5), **violated})
    callback.on_trial_result(0, trials, trials[1], {**_result(3, 0.5), "robust/masking_violations": 0.0})
    callback.wait_idle()
    _, children = mlflow_runs(uri, "exp")
    tags = {c.data.tags["ib.trial_id"]: c.data.tags.get("gradient_masking") for c in children}
    # each violated check by name, with what its violation means; the check that held is not named
    assert tags == {"t1": f"suspected: 2 check(s) violated (cw_succeeds: {MASKING_CHECKS['cw_succeeds']}; "
                          f"gradient_nonzero: {MASKING_CHECKS['gradient_nonzero']})", "t2": None}


def test_epoch_metrics_are_batched_until_a_trial_ends_and_kept_in_the_saved_state(tmp_path, monkeypatch):
    """Held-back epochs travel in get_state (a killed driver loses none) and go out as one log_batch."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_trial("t1", 0.1)]
    callback = _callback(uri, flush_results=64, flush_seconds=3600.0)
    callback.setup()
    callback.on_trial_start(0, trials, trials[0])
    callback.wait_idle()  # the start (and its params' log_batch) delivered before counting
    calls = []
    original = MlflowClient.log_batch

    def counted(self, run_id, **kwargs):
        calls.append(kwargs)
        return original(self, run_id, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counted)
    for epoch in range(1, 6):
        callback.on_trial_result(0, trials, trials[0], {**_result(epoch, 0.1 * epoch),
                                                        "robust/masking_violations": float(epoch == 5)})
    callback.wait_idle()  # the delivery thread has had its chance to send them
    assert calls == [] and [op["epoch"] for op in callback.get_state()["pending"]] == [1, 2, 3, 4, 5]
    callback.on_trial_complete(0, trials, trials[0])
    callback.wait_idle()
    assert len(calls) == 1 and callback.get_state()["pending"] == []
    _, children = mlflow_runs(uri, "exp")
    assert metric_steps(uri, children[0].info.run_id, "test/acc") == [1, 2, 3, 4, 5]
    assert children[0].data.tags["gradient_masking"] == "suspected: 1 check(s) violated"
    assert children[0].data.tags["ib.last_epoch"] == "5" and children[0].info.status == "FINISHED"


def test_saved_state_round_trips(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_trial("t1", 0.1)]
    first = _callback(uri)
    first.setup()
    first.on_trial_result(0, trials, trials[0], _result(1, 0.5))
    first.wait_idle()
    second = _callback(uri)
    second.set_state(first.get_state())
    assert second.parent_run_id == first.parent_run_id and second.last_epoch == {"t1": 1}


def test_a_resumed_callback_logs_where_the_resuming_command_says(tmp_path, monkeypatch):
    """Tune unpickles the first command's callback; the store's address is the resuming command's --tracking-uri."""
    import pickle

    pickled = pickle.dumps(_callback("http://old-head:5000"))
    assert pickle.loads(pickled).tracking_uri == "http://old-head:5000"
    monkeypatch.setattr(MlflowTrackingCallback, "resume_tracking_uri", "http://new-head:5000")
    assert pickle.loads(pickled).tracking_uri == "http://new-head:5000"


def test_interrupted_sweep_leaves_parent_killed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    callback = _callback(uri)
    callback.setup()
    callback.on_experiment_end([_trial("t1", 0.1, "TERMINATED"), _trial("t2", 1.0, "PENDING")])
    parents, _ = mlflow_runs(uri, "exp")
    assert parents[0].info.status == "KILLED"


def test_relative_sqlite_uri_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"


def _fake_result(trial_id: str, history: list[tuple[int, float]], error=None, epochs=3):
    frame = pd.DataFrame([{"epoch": e, "test/acc": a, "config/beta": 0.1, "trial_id": trial_id} for e, a in history])
    return SimpleNamespace(config={"beta": 0.1, "seed": 0, "epochs": epochs, "objective": "vib"},
                           metrics={"trial_id": trial_id}, metrics_dataframe=frame, error=error, path=f"/x/{trial_id}")


def test_rows_keep_the_last_report_of_a_replayed_epoch_and_classify_status(tmp_path):
    results = [
        _fake_result("a", [(1, 0.1), (2, 0.2), (2, 0.25), (3, 0.3)]),  # epoch 2 replayed after a restore
        _fake_result("b", [(1, 0.1)], error=RuntimeError("Traceback...\nFloatingPointError: non-finite loss")),
        _fake_result("c", [(1, 0.1)]),  # stopped early without error: interrupted
    ]
    epochs, final, evaluations = trial_rows(results, ["beta"])
    assert evaluations == []
    a = [r for r in epochs if r["trial_id"] == "a"]
    assert [r["epoch"] for r in a] == [1, 2, 3] and a[1]["test/acc"] == 0.25
    by_id = {r["trial_id"]: r for r in final}
    assert by_id["a"]["status"] == "TERMINATED" and by_id["a"]["test/acc"] == 0.3
    assert by_id["b"]["status"] == "ERROR" and by_id["b"]["error"] == "FloatingPointError: non-finite loss"
    assert by_id["c"]["status"] == "INCOMPLETE"
    epochs_path, final_path = write_results(Path(tmp_path), epochs, final, {"name": "s", "axes": ["beta"]})
    assert not (Path(tmp_path) / "evaluations.parquet").exists()
    assert read_sweep_metadata(final_path) == {"name": "s", "axes": ["beta"]}
    assert not list(Path(tmp_path).glob("*.tmp"))


def test_missing_metadata_is_a_clear_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "final.parquet")
    with pytest.raises(ValueError, match="no 'sweep' metadata"):
        read_sweep_metadata(tmp_path / "final.parquet")


def test_evaluation_rows_come_from_the_final_report(tmp_path):
    import json

    import pyarrow.parquet as pq

    rows = [{"evaluation": "pgd", "metric": "acc", "norm": "linf", "epsilon": 8 / 255, "steps": 20, "index": None,
             "value": 0.25},
            {"evaluation": "spectrum", "metric": "singular_value", "norm": "", "epsilon": None, "steps": None,
             "index": 0, "value": 3.5}]
    finished = _fake_result("a", [(1, 0.1), (2, 0.2), (3, 0.3)])
    finished.metrics_dataframe["evaluations"] = [None, None, json.dumps(rows)]
    failed = _fake_result("b", [(1, 0.1)], error=RuntimeError("boom"))
    epochs, final, evaluations = trial_rows([finished, failed], ["beta"])
    assert [(r["trial_id"], r["evaluation"], r["value"]) for r in evaluations] == [("a", "pgd", 0.25), ("a", "spectrum", 3.5)]
    assert evaluations[0]["config/beta"] == 0.1 and evaluations[0]["config/seed"] == 0
    assert "evaluations" not in final[0]
    paths = write_results(Path(tmp_path), epochs, final, {"name": "s", "axes": ["beta"]}, evaluations)
    table = pq.read_table(paths[-1])
    assert paths[-1].name == "evaluations.parquet" and table.num_rows == 2
    assert str(table.schema.field("steps").type) == "int64" and str(table.schema.field("epsilon").type) == "double"


class _FlakyClient:
    """An MlflowClient whose every call raises while ``down`` is set (a store that went away)."""

    def __init__(self, client):
        self.client, self.down, self.calls_refused = client, False, 0

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            if self.down:
                self.calls_refused += 1
                raise ConnectionError("connection refused")
            return method(*args, **kwargs)

        return call


def test_operations_are_buffered_while_the_store_is_down_and_delivered_in_order(tmp_path, monkeypatch):
    import mlflow.tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_trial("t1", 0.1), _trial("t2", 1.0)]
    callback = _callback(uri)
    callback.drain_timeout_s = 5.0
    callback.setup()
    flaky = _FlakyClient(mlflow.tracking.MlflowClient(uri))
    callback._client = flaky
    callback.on_trial_start(0, trials, trials[0])
    callback.on_trial_result(0, trials, trials[0], _result(1, 0.5))
    callback.wait_idle()  # delivered before the store goes down
    flaky.down = True
    for epoch in (2, 3):
        callback.on_trial_result(0, trials, trials[0], _result(epoch, 0.1 * epoch))
    callback.on_trial_start(0, trials, trials[1])  # a trial that starts while the store is down
    callback.on_trial_result(0, trials, trials[1], _result(1, 0.9))
    callback.on_trial_complete(0, trials, trials[0])
    callback.wait_idle()  # the delivery thread tried, failed and is backing off
    assert flaky.calls_refused >= 1 and len(callback.pending) == 5
    assert callback.get_state()["pending"] == callback.pending  # saved with the experiment
    monkeypatch.setattr(callback, "_retry_at", 0.0)
    flaky.down = False
    callback.on_experiment_end([_trial("t1", 0.1, "TERMINATED"), _trial("t2", 1.0, "RUNNING")])
    assert callback.pending == []
    parents, children = mlflow_runs(uri, "exp")
    assert parents[0].info.status == "KILLED"
    by_id = {c.data.tags["ib.trial_id"]: c for c in children}
    assert metric_steps(uri, by_id["t1"].info.run_id, "test/acc") == [1, 2, 3]
    assert metric_steps(uri, by_id["t2"].info.run_id, "test/acc") == [1]
    assert by_id["t1"].info.status == "FINISHED" and by_id["t2"].data.params["beta"] == "1.0"


class _TimeoutAfterWriteClient(_FlakyClient):
    """The next ``log_batch`` reaches the store and then raises, as a call that timed out on the
    client after the server had committed it."""

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if name != "log_batch":
            return method

        def call(*args, **kwargs):
            result = method(*args, **kwargs)
            if self.down:
                self.down, self.calls_refused = False, self.calls_refused + 1
                raise TimeoutError("read timed out")
            return result

        return call


def test_a_batch_retried_after_it_was_written_is_not_logged_twice(tmp_path, monkeypatch):
    """The callback cannot know whether a timed-out log_batch was written, so it sends it again;
    MLflow's SQL store drops the repeated metrics (same key, step, time and value)."""
    import mlflow.tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_trial("t1", 0.1)]
    callback = _callback(uri)
    callback.setup()
    flaky = _TimeoutAfterWriteClient(mlflow.tracking.MlflowClient(uri))
    callback._client = flaky
    callback.on_trial_start(0, trials, trials[0])
    callback.wait_idle()
    flaky.down = True
    callback.on_trial_result(0, trials, trials[0], _result(1, 0.5))
    callback.wait_idle()
    assert flaky.calls_refused == 1 and len(callback.pending) == 1  # kept: the callback saw a failure
    monkeypatch.setattr(callback, "_retry_at", 0.0)
    callback.on_trial_result(0, trials, trials[0], _result(2, 0.6))
    callback.on_experiment_end([_trial("t1", 0.1, "TERMINATED")])
    _, children = mlflow_runs(uri, "exp")
    history = mlflow.tracking.MlflowClient(uri).get_metric_history(children[0].info.run_id, "test/acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.6)]
