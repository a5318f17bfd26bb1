"""The MLflow link opens on the sweep's comparison: checked in headless Chromium against a real server.

The fast tests cover the pieces (child-run names, the link, the experiment's tags, the error for
an unreachable store); the slow one runs a two-trial sweep, serves its SQLite store with
``mlflow server`` and renders the link's page. With ``IB_MLFLOW_SCREENSHOT=PATH`` set it also
saves a screenshot of that page (docs/images/mlflow_runs.png is made this way, docs/results.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.mlflow_callback import _trial_name
from orchestrator.tracking import (EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, SHARED_VIEW_TAG, _unreachable_reason,
                                   check_tracking, runs_url, save_runs_view)
from tests.helpers import mlflow_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GENAI_OVERVIEW = ("Traces 0", "No data available")  # what #/experiments/ID shows in MLflow 3.17


def trial(config, evaluated_params, trial_id="54bbf_00006"):
    return SimpleNamespace(trial_id=trial_id, config=config, evaluated_params=evaluated_params)


def test_child_runs_are_named_by_their_swept_values_then_the_seed():
    config = {"lr": 1e-3, "beta": 32.0, "latent_dim": 256, "objective": "vib", "seed": 0}
    # Tune sorts evaluated_params by name; the name keeps the config's (the sweep's) order
    assert _trial_name(trial(config, {"latent_dim": 256, "beta": 32.0, "seed": 0})) == "beta=32 latent_dim=256 seed=0"
    assert _trial_name(trial(config, {"latent_dim": 256, "beta": 32.0}), axes=["latent_dim", "beta"]) \
        == "latent_dim=256 beta=32 seed=0"
    short = {1e-9: "1e-9", 0.001: "0.001", 0.5: "0.5", 1e6: "1e6", 0.123456789: "0.123457"}
    for value, shown in short.items():
        assert _trial_name(trial({**config, "beta": value}, {"beta": value, "seed": 0})) == f"beta={shown} seed=0"
    assert _trial_name(trial({"estimator": "infonce", "seed": 2}, {"estimator": "infonce"})) == "estimator=infonce seed=2"
    assert _trial_name(trial({"lr": 1e-3}, {})) == "54bbf_00006"


def test_runs_url_opens_the_training_runs_in_the_saved_view():
    assert runs_url("7") == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert runs_url("7", host="http://gpu-box:8080/", view="ab12") == \
        "http://gpu-box:8080/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=ab12"


def test_the_experiment_is_tagged_as_model_training(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    created = check_tracking(uri, "made_here")
    assert client.get_experiment(created).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    older = client.create_experiment("made_before")  # an experiment from before the tag gets it once found
    assert check_tracking(uri, "made_before") == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    check_tracking(uri, "chosen")  # a kind set by hand stays
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_the_saved_view_shows_one_sweep_run_with_its_axes_and_metrics(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = check_tracking(uri, "vib_digits")
    assert save_runs_view(uri, experiment, "abc123", ["beta", "latent_dim"], ["test/acc", "test/rate_bits"]) == "abc123"
    state = json.loads(MlflowClient(uri).get_experiment(experiment).tags[SHARED_VIEW_TAG + "abc123"])
    assert state == {
        "searchFilter": "tags.`mlflow.parentRunId` = 'abc123'",
        "selectedColumns": ["params.`beta`", "params.`latent_dim`", "params.`seed`",
                            "metrics.`test/acc`", "metrics.`test/rate_bits`"],
        "orderByKey": "metrics.`test/acc`", "orderByAsc": False,
    }
    save_runs_view(uri, experiment, "abc123", ["beta"], ["test/loss"], mode="min")
    assert json.loads(MlflowClient(uri).get_experiment(experiment).tags[SHARED_VIEW_TAG + "abc123"])["orderByAsc"]
    with pytest.raises(ValueError, match="mode 'best': expected 'max' or 'min'"):
        save_runs_view(uri, experiment, "abc123", ["beta"], ["test/acc"], mode="best")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("path", ["", "/a/long/path/behind/a/proxy/that/used/to/be/cut/in/the/middle/of/the/url"])
def test_an_unreachable_store_is_one_line_with_the_whole_uri_and_the_reason(path):
    uri = f"http://127.0.0.1:{free_port()}{path}"  # nothing listens there
    with pytest.raises(ValueError) as raised:
        check_tracking(uri, "vib_digits")
    assert str(raised.value) == f"tracking URI {uri!r} is unreachable: Connection refused"


def test_a_long_reason_is_shortened_at_a_word():
    words = "the store said something long " * 20
    reason = _unreachable_reason(RuntimeError(words + "\nsecond line"))
    assert len(reason) <= 160 and reason.endswith(" ...") and "\n" not in reason
    assert words.startswith(reason.removesuffix(" ...")) and reason.removesuffix(" ...").split()[-1] in words.split()
    assert _unreachable_reason(RuntimeError("API request to endpoint /x failed with error code 404 != 200")) \
        == "the server answered HTTP 404"


def page_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def chromium(url: str, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url`` with an empty profile: a first visit, the UI's own defaults."""
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           "--window-size=1600,900", "--virtual-time-budget=20000", *flags, url],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium on PATH to render the MLflow UI (apt install chromium)")
def test_the_printed_link_opens_the_runs_of_the_sweep_in_a_browser(workspace, ray_session):
    from orchestrator.sweep import main

    assert main(workspace.args("vib_digits", "--smoke", "--set", "beta=[0.1, 1.0]", "--set", "latent_dim=2",
                               "--epochs", "1")) == 0
    (parent,), children = mlflow_runs(workspace.tracking_uri, "vib_digits")
    assert sorted(c.info.run_name for c in children) == ["beta=0.1 seed=0", "beta=1 seed=0"]
    experiment = parent.info.experiment_id
    view = save_runs_view(workspace.tracking_uri, experiment, parent.info.run_id, ["beta"], ["test/acc", "test/rate_bits"])

    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", workspace.tracking_uri,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=workspace.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not come up"
                time.sleep(1)
        url = runs_url(experiment, host=f"http://127.0.0.1:{port}", view=view)
        rendered = chromium(url, workspace.root / "chromium", "--dump-dom")
        text = page_text(rendered.stdout)
        for name in ("beta=0.1 seed=0", "beta=1 seed=0", "test/acc", "test/rate_bits"):
            assert name in text, f"{name!r} not on {url}: {text[:2000]}"
        assert parent.info.run_name not in text, "the view shows this sweep run's trials, not its parent"
        for overview in GENAI_OVERVIEW:
            assert overview not in text, f"{url} rendered MLflow's GenAI overview: {text[:2000]}"
        if os.environ.get("IB_MLFLOW_SCREENSHOT"):
            shot = Path(os.environ["IB_MLFLOW_SCREENSHOT"]).resolve()
            chromium(url, workspace.root / "chromium", f"--screenshot={shot}")
            assert shot.stat().st_size > 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the uvicorn workers it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
