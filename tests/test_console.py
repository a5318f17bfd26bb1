"""The console during a sweep: the project's lines on it, Ray's and MLflow's in the run's sweep.log,
a live view of the running trials on a terminal, and an MLflow callback that never holds up Tune."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow.tracking
import pytest

from orchestrator.progress import ProgressCallback, RunningTrial, SweepView, render_view
from orchestrator.mlflow_callback import MlflowTrackingCallback
from tests.conftest import Workspace
from tests.helpers import metric_steps, mlflow_runs

ROOT = Path(__file__).resolve().parents[1]
# What Ray, Tune and MLflow print when nothing routes them: log levels, Tune's slow-callback
# warning and configuration box, MLflow's schema migrations, Ray's token notice, escape codes.
CHATTER = ("WARNING", "INFO", "performance bottleneck", "alembic", "Configuration for experiment",
           "View detailed results", "Token authentication", "\x1b")
# Printed by main()'s check_tracking, which creates a new store before run() calls console.quiet
# (until main() calls console.hold() before it: test_a_new_mlflow_store_is_created_quietly).
SCHEMA_LINES = ("INFO mlflow.store.db.utils: Creating initial MLflow database tables",
                "INFO mlflow.store.db.utils: Updating database tables")


# ---- a real sweep, stdout not a terminal ---------------------------------------------------------

@pytest.fixture(scope="module")
def quiet_sweep(tmp_path_factory):
    """A two-trial dib_digits --smoke sweep through the CLI, in the environment of a new user's shell
    (no RAY_AUTH_MODE, so Ray prints its token notice; none of the variables console.quiet sets)."""
    workspace = Workspace(tmp_path_factory.mktemp("console"))
    env = {key: value for key, value in os.environ.items()
           if key not in ("RAY_AUTH_MODE", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
                          "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S")}
    args = workspace.args("dib_digits", "--smoke", "--epochs", "2")  # the case: attacks, CompressAI
    done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args], capture_output=True, text=True,
                          timeout=600, cwd=workspace.root, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workspace, done


@pytest.mark.slow
def test_a_sweep_prints_its_own_lines_and_logs_the_libraries(quiet_sweep):
    workspace, done = quiet_sweep
    for text in CHATTER:
        assert text not in done.stdout, done.stdout
    stderr = [line for line in done.stderr.splitlines() if not any(s in line for s in SCHEMA_LINES)]
    assert stderr == [], done.stderr
    log_lines = [line for line in done.stdout.splitlines() if line.startswith("log:")]
    assert len(log_lines) == 1, done.stdout
    log = Path(log_lines[0].split()[1])
    (run_dir,) = workspace.run_dirs("dib_digits")
    assert log == run_dir / "sweep.log" and log.is_file()
    assert "Token authentication is enabled" in log.read_text()  # Ray's notice, in the log instead
    assert re.search(r"^\[1/2\] beta=\S+ seed=0  epoch 2  test/acc=", done.stdout, re.M), done.stdout
    assert re.search(r"^\[2/2\] ", done.stdout, re.M)
    assert done.stdout.index("log:") < done.stdout.index("[1/2]")  # the project's lines come first


@pytest.mark.slow
def test_a_new_mlflow_store_is_created_quietly(quiet_sweep):
    _, done = quiet_sweep
    assert "mlflow.store.db.utils" not in done.stderr


# ---- routing, in a process of its own: it changes the logging of the whole process ----------------

ROUTING_SCRIPT = textwrap.dedent("""
    import logging, sys, warnings
    from pathlib import Path
    import ray
    from orchestrator.console import hold, quiet

    hold()  # while the command line is checked: nothing written, nothing on the console
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    assert not Path(sys.argv[1]).exists()
    quiet(Path(sys.argv[1]))
    logging.getLogger("ray.tune.execution.tune_controller").warning(
        "The 'callbacks.on_trial_result' operation took 0.608 s, which may be a performance bottleneck.")
    logging.getLogger("alembic.runtime.migration").warning("Running upgrade  -> 451aebb31d03")
    for _ in range(2):  # shown once
        logging.getLogger("ray.tune").error("A worker node died\\nTraceback (most recent call last): ...")
    logging.getLogger("ray.tune.execution.tune_controller").error("Trial task failed for trial train_1")
    logging.getLogger("orchestrator.mlflow_callback").warning("MLflow at http://x:5000 is unreachable (ConnectionError)")
    warnings.warn_explicit("a deprecated Ray API", UserWarning, str(Path(ray.__file__).parent / "x.py"), 1)
    warnings.warn("the project's own warning")
    print("done")
""")


def test_libraries_log_to_the_file_and_the_console_keeps_what_matters_once(tmp_path):
    """stdout is a terminal (a pty), as in a user's shell; Ray's colorama would reset it at exit."""
    primary, secondary = os.openpty()
    process = subprocess.Popen([sys.executable, "-c", ROUTING_SCRIPT, str(tmp_path / "run")], stdout=secondary,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(secondary)
    _, stderr = process.communicate(timeout=120)
    stdout = b""
    while select.select([primary], [], [], 1.0)[0]:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child has closed its end
            break
        if not chunk:
            break
        stdout += chunk
    os.close(primary)
    log = tmp_path / "run" / "sweep.log"
    stdout_text = stdout.decode().replace("\r\n", "\n")
    assert process.returncode == 0, stderr
    assert stdout_text == f"log:     {log}  (Ray's and MLflow's messages)\ndone\n"  # no ESC[0m at exit
    console = [line for line in stderr.splitlines() if line.strip()]
    assert console[:2] == [f"error: A worker node died (details: {log})",
                           "warning: MLflow at http://x:5000 is unreachable (ConnectionError)"]
    assert console[2].endswith("UserWarning: the project's own warning") and len(console) == 3, stderr
    text = log.read_text()
    for expected in ("performance bottleneck", "Creating initial MLflow database tables", "Running upgrade",
                     "Traceback (most recent call last)", "Trial task failed", "is unreachable",
                     "a deprecated Ray API"):
        assert expected in text, text


# ---- the live view ---------------------------------------------------------------------------------

def test_the_live_view_shows_each_running_trial_and_the_time_left():
    view = SweepView(total=7, metric="test/acc", started=0.0, done=3, failed=1, durations=[60.0, 80.0], running={
        "b": RunningTrial("beta=32.0 seed=0", 30, started=130.0, epoch=3),
        "a": RunningTrial("beta=0.5 seed=0", 30, started=100.0, epoch=12, value=0.93121)})
    # 18 epochs at 5 s and 27 at 10 s left for the running two (longer than the 70 s finished trials
    # took on average), 2 x 70 s for the two waiting, on 2 slots: (90 + 270 + 140) / 2 s
    assert render_view(view, now=160.0) == [
        "3/7 trials done (1 failed), 2 running, 2m40s elapsed, about 4m10s left",
        "  beta=0.5 seed=0   epoch 12/30  test/acc=0.9312    1m00s",
        "  beta=32.0 seed=0  epoch  3/30  test/acc=-         30s",
    ]
    first = SweepView(total=2, metric="test/acc", started=0.0,
                      running={"a": RunningTrial("beta=1 seed=0", 10, started=0.0, epoch=2, value=0.5)})
    # nothing finished yet: 10 s per epoch, 8 epochs left here and 10 for the trial waiting
    assert render_view(first, now=20.0)[0] == "0/2 trials done, 1 running, 20s elapsed, about 3m00s left"
    first.durations = [300.0]  # a trial of this sweep took 300 s: more than 8 epochs at 10 s
    assert render_view(first, now=20.0)[0] == "0/2 trials done, 1 running, 20s elapsed, about 9m40s left"
    first.running["a"].epoch, first.durations = 0, []
    assert render_view(first, now=20.0)[0] == "0/2 trials done, 1 running, 20s elapsed"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _screen(text: str) -> list[str]:
    """What a terminal shows after ``text``, understanding the two sequences the live region uses."""
    lines, row = [""], 0
    for token in re.split(r"(\x1b\[\d+F|\x1b\[J)", text):
        if token == "\x1b[J":
            lines = lines[:row] + [""]
        elif token.startswith("\x1b["):
            row = max(0, row - int(token[2:-1]))
            lines[row] = ""
        else:
            for char in token:
                if char == "\n":
                    row += 1
                    lines += [""] * (row + 1 - len(lines))
                else:
                    lines[row] += char
    return [line for line in lines if line]


def _trial(trial_id: str, beta: float, epochs: int = 3, error_file: str | None = None):
    return SimpleNamespace(trial_id=trial_id, config={"beta": beta, "seed": 0, "epochs": epochs}, last_result={},
                           path=f"/runs/train_{trial_id}", error_file=error_file, pickled_error_file=None)


def test_on_a_terminal_finished_trials_print_above_the_live_view(monkeypatch, tmp_path):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    error = tmp_path / "error.txt"
    error.write_text("Traceback (most recent call last):\n  ...\nFloatingPointError: non-finite loss at epoch 2 (kl)\n")
    trials = [_trial("a", 0.5), _trial("b", 32.0, error_file=str(error))]
    progress = ProgressCallback(2, ["beta"], ["test/acc", "test/rate_bits"], redraw_s=0.0)
    progress.setup()
    for trial in trials:
        progress.on_trial_start(0, trials, trial)
    for epoch in (1, 2, 3):
        trials[0].last_result = {"epoch": epoch, "test/acc": 0.9 + epoch / 100, "test/rate_bits": 40.0}
        progress.on_trial_result(0, trials, trials[0], trials[0].last_result)
    screen = _screen(terminal.getvalue())
    assert screen[0].startswith("0/2 trials done, 2 running,") and len(screen) == 3
    assert screen[1].startswith("  beta=0.5 seed=0   epoch 3/3  test/acc=0.93")
    assert screen[2].startswith("  beta=32.0 seed=0  epoch 0/3  test/acc=-")

    progress.on_trial_complete(0, trials, trials[0])
    progress.on_trial_error(0, trials, trials[1])
    screen = _screen(terminal.getvalue())
    assert screen[:2] == [
        "[1/2] beta=0.5 seed=0  epoch 3  test/acc=0.93  test/rate_bits=40",
        "[2/2] beta=32.0 seed=0  FAILED: FloatingPointError: non-finite loss at epoch 2 (kl)  "
        "(error.txt in /runs/train_b)"]
    assert screen[2].startswith("2/2 trials done (1 failed), 0 running,")
    progress.on_experiment_end(trials)
    assert _screen(terminal.getvalue()) == screen[:2]  # the view is gone; the record stays


def test_without_a_terminal_only_the_lines_are_printed(capsys, tmp_path):
    (tmp_path / "error.txt").write_text("Traceback ...\nRuntimeError: injected fault at epoch 2\n")
    trials = [_trial("a", 0.5, error_file=str(tmp_path / "error.txt"))]
    trials[0].num_failures, trials[0].max_failures = 1, 3
    progress = ProgressCallback(1, ["beta"], ["test/acc"])
    progress.setup()
    progress.on_trial_start(0, trials, trials[0])
    trials[0].last_result = {"epoch": 1, "test/acc": 0.25}
    progress.on_trial_result(0, trials, trials[0], trials[0].last_result)
    progress.on_trial_recover(0, trials, trials[0])
    trials[0].last_result = {"epoch": 3, "test/acc": 0.5}
    progress.on_trial_result(0, trials, trials[0], trials[0].last_result)
    progress.on_trial_complete(0, trials, trials[0])
    progress.on_experiment_end(trials)
    assert capsys.readouterr().out == (
        "      beta=0.5 seed=0  failed after epoch 1: RuntimeError: injected fault at epoch 2  "
        "(retry 1 of 3, from its last checkpoint if it has one)\n"
        "[1/1] beta=0.5 seed=0  epoch 3  test/acc=0.5\n")


# ---- the MLflow callback on Tune's loop ------------------------------------------------------------

class _SlowClient:
    """An MlflowClient whose every call takes ``delay_s`` longer: a loaded or distant store."""

    def __init__(self, client, delay_s: float):
        self.client, self.delay_s = client, delay_s

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            time.sleep(self.delay_s)
            return method(*args, **kwargs)

        return call


def _tracked_trial(trial_id: str, beta: float):
    trial = _trial(trial_id, beta)
    trial.status, trial.evaluated_params, trial.get_error = "RUNNING", {"beta": beta}, lambda: None
    return trial


def test_every_hook_returns_at_once_while_a_slow_store_is_written(tmp_path):
    """Ray calls a callback a bottleneck when a hook takes 0.5 s; on_experiment_end waits for the
    queue on purpose and is not timed."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    callback = MlflowTrackingCallback(uri, "exp", "exp_run1", {"sweep": "exp"}, {"lr": 0.1}, flush_seconds=0.0)
    callback._client = _SlowClient(mlflow.tracking.MlflowClient(uri), delay_s=0.1)
    trials = [_tracked_trial("t1", 0.1), _tracked_trial("t2", 1.0)]
    took = {}

    def timed(name, *args):
        started = time.perf_counter()
        getattr(callback, name)(*args)
        took[name] = max(took.get(name, 0.0), time.perf_counter() - started)

    timed("setup")
    for trial in trials:
        timed("on_trial_start", 0, trials, trial)
    for epoch in (1, 2, 3):
        timed("on_trial_result", 0, trials, trials[0], {"epoch": epoch, "test/acc": 0.1 * epoch})
        timed("get_state")
    timed("on_trial_complete", 0, trials, trials[0])
    timed("on_trial_error", 0, trials, trials[1])
    assert max(took.values()) < 0.05, took
    trials[0].status, trials[1].status = "TERMINATED", "ERROR"
    callback.on_experiment_end(trials)
    parents, children = mlflow_runs(uri, "exp")
    assert parents[0].info.status == "FINISHED"
    by_id = {c.data.tags["ib.trial_id"]: c for c in children}
    assert metric_steps(uri, by_id["t1"].info.run_id, "test/acc") == [1, 2, 3]
    assert by_id["t1"].info.status == "FINISHED" and by_id["t2"].info.status == "FAILED"


def test_a_saved_state_older_than_the_store_logs_no_epoch_twice(tmp_path):
    """Tune copies its saved state to the run directory every few minutes; a driver killed in
    between is restored with a state that names a trial's run but not the epochs logged since,
    and Tune reruns that trial."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trials = [_tracked_trial("t1", 0.1)]

    def callback():
        return MlflowTrackingCallback(uri, "exp", "exp_run1", {"sweep": "exp"}, {"lr": 0.1}, flush_seconds=0.0)

    first = callback()
    first.setup()
    first.on_trial_start(0, trials, trials[0])
    first.wait_idle()
    saved = first.get_state()  # the run is known, no epoch yet
    for epoch in (1, 2, 3):
        first.on_trial_result(0, trials, trials[0], {"epoch": epoch, "test/acc": 0.1 * epoch})
    first.wait_idle()

    second = callback()
    second.set_state(saved)
    second.setup()
    second.on_trial_start(0, trials, trials[0])
    for epoch in (1, 2, 3):  # the rerun, from scratch
        second.on_trial_result(0, trials, trials[0], {"epoch": epoch, "test/acc": 0.2 * epoch})
    second.on_trial_complete(0, trials, trials[0])
    trials[0].status = "TERMINATED"
    second.on_experiment_end(trials)
    _, (child,) = mlflow_runs(uri, "exp")
    history = mlflow.tracking.MlflowClient(uri).get_metric_history(child.info.run_id, "test/acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, pytest.approx(0.3))]
    assert child.info.status == "FINISHED"
