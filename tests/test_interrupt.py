"""Ctrl-C at every moment of a sweep: a clean stop, then a resume that finishes every trial once.

A clean stop is exit code 130, the printed ``--resume`` command, parquet files of what had
finished (the unfinished trials as INCOMPLETE rows), ``sweep.json`` saying ``interrupted`` and
no MLflow run left RUNNING. Each sweep test runs the real CLI in a session of its own and sends
SIGINT to its whole process group, as a terminal's Ctrl-C does (Ray's own processes block it),
then runs the printed command itself. Ctrl-C while trials train, two at a time, is
tests/test_resume.py.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from orchestrator.interrupt import CtrlC
from orchestrator.results import trial_rows
from orchestrator.sweep import build_parser, find_resumable, main, record_state, resume_command
from search_spaces import get_sweep
from tests.helpers import metric_steps, mlflow_runs, read_tables

RESUME_PREFIX = "python -m orchestrator.sweep "


class Cli:
    """``python -m orchestrator.sweep ARGS`` in its own session; its output lines, read as they come."""

    def __init__(self, args: list[str], cwd: Path):
        # Tune writes result.json on the driver and copies it to --storage with its experiment
        # state; copied every second, a test sees there within a second or two when a trial reports.
        env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "orchestrator.sweep", *args], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, prefix: str, timeout: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: any(line.startswith(prefix) for line in self.lines), timeout):
                self.process.kill()
                pytest.fail(f"no line starting {prefix!r} in {timeout:.0f} s:\n" + self.output()[-3000:])

    def ctrl_c(self) -> float:
        """SIGINT to the CLI's process group, like Ctrl-C in its terminal; when it was sent."""
        os.killpg(self.process.pid, signal.SIGINT)
        return time.monotonic()

    def finish(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the sweep did not end within {timeout:.0f} s of Ctrl-C:\n" + self.output()[-3000:])

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def resume_words(self) -> list[str]:
        """The words of the printed ``--resume`` command, after ``python -m orchestrator.sweep``."""
        lines = self.output().splitlines()
        for i, line in enumerate(lines[:-1]):
            if "Continue it with:" in line:
                command = lines[i + 1].strip()
                assert command.startswith(RESUME_PREFIX) and command.endswith(" --resume"), command
                return shlex.split(command)[3:]
        pytest.fail("no resume command printed:\n" + self.output()[-3000:])


def run_state(run_dir: Path) -> str:
    return json.loads((run_dir / "sweep.json").read_text())["state"]


def assert_cleanly_stopped(cli: Cli, code: int, workspace, sweep: str) -> Path:
    assert code == 130, cli.output()[-3000:]
    (run_dir,) = workspace.run_dirs(sweep)
    assert run_state(run_dir) == "interrupted"
    parents, children = mlflow_runs(workspace.tracking_uri, sweep)
    assert all(run.info.status != "RUNNING" for run in parents + children), \
        [(run.info.run_name, run.info.status) for run in parents + children]
    return run_dir


def assert_each_trial_once(workspace, sweep: str, trials: int, epochs: int, metric: str) -> pd.DataFrame:
    """Every trial exactly once in final.parquet and as an MLflow child, each epoch once."""
    (run_dir,) = workspace.run_dirs(sweep)
    assert run_state(run_dir) == "finished"
    epochs_table, final = read_tables(run_dir)
    assert len(final) == trials and set(final["status"]) == {"TERMINATED"}, final[["trial_id", "status"]]
    assert len(epochs_table) == trials * epochs and not epochs_table.duplicated(["trial_id", "epoch"]).any()
    parents, children = mlflow_runs(workspace.tracking_uri, sweep)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["ib.trial_id"] for c in children) == sorted(final["trial_id"])
    for child in children:
        assert child.info.status == "FINISHED"
        assert metric_steps(workspace.tracking_uri, child.info.run_id, metric) == list(range(1, epochs + 1))
    return final


# ---- the CLI, Ctrl-C at each moment --------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_while_ray_starts(workspace):
    args = workspace.args("vib_digits", "--smoke", "--epochs", "2")
    cli = Cli(args, workspace.root)
    cli.wait_for_line("log:", timeout=120)  # printed just before ray.init
    cli.ctrl_c()
    run_dir = assert_cleanly_stopped(cli, cli.finish(timeout=120), workspace, "vib_digits")
    assert not list(run_dir.glob("train_*")) and not (run_dir / "final.parquet").exists(), "a trial ran"

    resumed = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *cli.resume_words()], cwd=workspace.root,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_each_trial_once(workspace, "vib_digits", trials=2, epochs=2, metric="test/acc")


@pytest.mark.slow
def test_ctrl_c_during_final_evaluations_then_during_reports(workspace, ray_session):
    # dib_digits' attacks run after the last epoch, before its report. With these sizes a trial's
    # last epoch took 12 s on the 2-core machine (result.json's time_this_iter_s), against 3-4 s
    # with --smoke's own attacks: 3 s after the first epoch's report, the trial is attacking.
    args = workspace.args("dib_digits", "--smoke", "--set", "eval_subset=450", "--set", "cw_steps=100")
    cli = Cli(args, workspace.root)
    first_epoch = _wait_for_a_result(workspace, "dib_digits", cli, timeout=240)
    time.sleep(max(0.0, first_epoch + 3.0 - time.monotonic()))  # epoch 2 trained: the attacks run
    cli.ctrl_c()
    run_dir = assert_cleanly_stopped(cli, cli.finish(timeout=120), workspace, "dib_digits")
    _, final = read_tables(run_dir)
    assert len(final) == 2 and set(final["status"]) == {"INCOMPLETE"}, final[["status", "epochs_completed"]]
    assert sorted(final["config/beta"]) == [0.0, 8.0]
    assert max(final["epochs_completed"]) == 1  # a trial was in its last epoch, which it never reported

    # the resume, interrupted while it builds its reports: all trials finished, the run stays resumable
    resuming = Cli(cli.resume_words(), workspace.root)
    resuming.wait_for_line("results:", timeout=300)  # printed before the reports are built
    _wait_for(lambda: any((run_dir / "reports").glob("*.png")), resuming, "the first figure", timeout=60)
    resuming.ctrl_c()
    assert_cleanly_stopped(resuming, resuming.finish(timeout=120), workspace, "dib_digits")
    assert "report:" not in resuming.output() and not (run_dir / "reports" / "report.md").exists()
    _, final = read_tables(run_dir)
    assert set(final["status"]) == {"TERMINATED"}

    assert main(resuming.resume_words()) == 0
    final = assert_each_trial_once(workspace, "dib_digits", trials=2, epochs=2, metric="test/acc")
    evaluations = pd.read_parquet(run_dir / "evaluations.parquet")
    assert set(evaluations["trial_id"]) == set(final["trial_id"])
    assert (run_dir / "reports" / "report.md").is_file()


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_leaves_a_resumable_run(workspace, ray_session):
    args = workspace.args("vib_digits", "--smoke", "--epochs", "4", "--set", "checkpoint_min_seconds=0",
                          "--set", "checkpoint_every=1")
    cli = Cli(args, workspace.root)
    _wait_for_a_result(workspace, "vib_digits", cli, timeout=240)
    cli.ctrl_c()
    time.sleep(0.3)
    second = cli.ctrl_c()
    code = cli.finish(timeout=60)
    assert time.monotonic() - second < 15, "the second Ctrl-C did not stop the sweep at once"
    assert "Ctrl-C again" in cli.output(), cli.output()[-3000:]
    assert_cleanly_stopped(cli, code, workspace, "vib_digits")

    assert main(cli.resume_words()) == 0
    assert_each_trial_once(workspace, "vib_digits", trials=2, epochs=4, metric="test/acc")


def _wait_for(condition, cli: Cli, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if cli.process.poll() is not None or time.monotonic() > deadline:
            cli.process.kill()
            pytest.fail(f"the sweep ended or {timeout:.0f} s passed before {what}:\n" + cli.output()[-3000:])
        time.sleep(0.02)


def _wait_for_a_result(workspace, sweep: str, cli: Cli, timeout: float) -> float:
    """Wait until some trial of the sweep has reported its first epoch; when it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(path.stat().st_size for path in workspace.storage.glob(f"{sweep}_*/train_*/result.json")):
            return time.monotonic()
        if cli.process.poll() is not None:
            pytest.fail("the sweep ended before a trial reported:\n" + cli.output()[-3000:])
        time.sleep(0.05)
    cli.process.kill()
    pytest.fail(f"no trial reported within {timeout:.0f} s:\n" + cli.output()[-3000:])


# ---- the pieces, without a sweep -----------------------------------------------------------

def _result(path: str, config: dict, history: list[int], trial_id: str | None = None):
    frame = pd.DataFrame([{"epoch": e, "test/acc": 0.5} for e in history]) if history else None
    return SimpleNamespace(config=config, metrics={"trial_id": trial_id} if trial_id else {},
                           metrics_dataframe=frame, error=None, path=path)


def test_a_trial_that_never_reported_is_an_incomplete_row():
    config = {"beta": 1.0, "seed": 0, "epochs": 3}
    results = [_result("/x/a", config, [1, 2, 3], "a"), _result("/x/b", config, [1], "b"),
               _result("/x/c", {}, [])]  # pending when the sweep stopped: Tune's Result knows nothing of it
    _, final, _ = trial_rows(results, ["beta"])
    assert [row["status"] for row in final] == ["TERMINATED", "INCOMPLETE", "INCOMPLETE"]
    assert final[2]["epochs_completed"] == 0

    _, final, _ = trial_rows(results, ["beta"], known={"/x/c": ("c_00002", {"beta": 8.0, "seed": 0, "epochs": 3})})
    assert (final[2]["trial_id"], final[2]["status"], final[2]["config/beta"]) == ("c_00002", "INCOMPLETE", 8.0)


def test_the_resume_command_repeats_the_options_that_matter(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/m.db")
    monkeypatch.delenv("IB_STORAGE", raising=False)
    monkeypatch.delenv("IB_DATA_DIR", raising=False)
    argv = ["vib_digits", "--smoke", "--set", "beta=[0.1, 1.0]", "--epochs", "3", "--cpus-per-trial", "0.5",
            "--max-concurrent", "1", "--storage", "/tmp/my runs", "--dry-run"]
    command = resume_command(build_parser().parse_args(argv))
    assert command == ("python -m orchestrator.sweep vib_digits --smoke --epochs 3 --set 'beta=[0.1, 1.0]' "
                       "--cpus-per-trial 0.5 --max-concurrent 1 --storage '/tmp/my runs' "
                       "--tracking-uri sqlite:////tmp/m.db --resume")
    again = vars(build_parser().parse_args(shlex.split(command)[3:]))
    expected = vars(build_parser().parse_args([*argv, "--tracking-uri", "sqlite:////tmp/m.db"]))
    assert {**again, "resume": False, "dry_run": True} == expected


def test_resume_finds_the_newest_unfinished_run_of_this_sweep_only(tmp_path):
    spec = get_sweep("dib_cifar")
    record = {"spec": spec.to_dict(), "search": "grid"}
    runs = {"dib_cifar_2026-01-01_00-00-00": "interrupted", "dib_cifar_2026-01-02_00-00-00": "running",
            "dib_cifar_2026-01-03_00-00-00": "finished", "dib_cifar_2026-01-04_00-00-00": None,
            "dib_cifar_unregularized_2026-01-05_00-00-00": "running"}  # another sweep whose name extends this one
    for name, state in runs.items():
        (tmp_path / name).mkdir()
        if state is None:  # a sweep.json without a state: finished once final.parquet exists
            (tmp_path / name / "sweep.json").write_text(json.dumps(record))
            (tmp_path / name / "final.parquet").touch()
        else:
            record_state(tmp_path / name, state, record)
    assert find_resumable(tmp_path, spec, "grid") == "dib_cifar_2026-01-02_00-00-00"
    record_state(tmp_path / "dib_cifar_2026-01-02_00-00-00", "finished")
    assert find_resumable(tmp_path, spec, "grid") == "dib_cifar_2026-01-01_00-00-00"
    record_state(tmp_path / "dib_cifar_2026-01-01_00-00-00", "finished")
    with pytest.raises(ValueError, match="no unfinished run of sweep 'dib_cifar'"):
        find_resumable(tmp_path, spec, "grid")


def test_ctrl_c_is_recorded_passed_to_tune_or_raised_by_phase(monkeypatch):
    monkeypatch.delenv("TUNE_DISABLE_SIGINT_HANDLER", raising=False)
    before = signal.getsignal(signal.SIGINT)
    with CtrlC() as ctrl_c:  # while the driver starts: recorded, the driver checks it
        assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"
        signal.raise_signal(signal.SIGINT)
        assert ctrl_c.requested
        with pytest.raises(KeyboardInterrupt):  # the second stops at once
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == before and "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ

    with CtrlC() as ctrl_c, pytest.raises(KeyboardInterrupt):  # the reports are abandoned at once
        ctrl_c.enter("reports")
        signal.raise_signal(signal.SIGINT)

    tune_stops = []
    with CtrlC() as ctrl_c:  # during the fit: Tune's own graceful stop, by SIGUSR1
        ctrl_c.enter("fitting")
        signal.signal(signal.SIGUSR1, lambda *_: tune_stops.append(time.monotonic()))  # Tune's handler
        signal.raise_signal(signal.SIGINT)
        assert len(tune_stops) == 1
    with CtrlC() as ctrl_c:  # the fit is starting and Tune does not listen yet: passed on once it does
        ctrl_c.enter("fitting")
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.2)
        signal.signal(signal.SIGUSR1, lambda *_: tune_stops.append(time.monotonic()))
        deadline = time.monotonic() + 5
        while len(tune_stops) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(tune_stops) == 2
