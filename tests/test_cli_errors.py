"""Every bad input is one line on stderr and exit code 2, before Ray starts or anything is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    (["vib_digit"], "unknown sweep 'vib_digit'; did you mean vib_digits"),
    (["vib_digits", "--set", "beta=-1"], "beta=-1: expected a value >= 0"),
    (["vib_digits", "--set", "beta=[0.1, -2]"], "beta=-2: expected a value >= 0"),
    (["vib_digits", "--set", "betta=1"], "unknown key 'betta'"),
    (["vib_digits", "--set", "beta"], "--set 'beta': expected KEY=VALUE"),
    (["vib_digits", "--set", "beta=[0.1,"], "is not valid JSON"),
    (["vib_digits", "--set", "lr=abc"], "lr='abc': expected a number"),
    (["vib_digits", "--set", 'beta={"a": 1}'], "expected a JSON scalar or a list"),
    (["vib_digits", "--set", "beta=[]"], "grid axis 'beta' is empty"),
    (["knn_ib_digits", "--set", "batch_sampler=random"], "knn_ib: batch_sampler='random', batch_size=200, k=1: expected"),
    (["vib_digits", "--epochs", "0"], "epochs 0"),
    (["vib_digits", "--tracking-uri", "sqlite:////nonexistent-dir/mlflow.db"], "does not exist or is not writable"),
    (["vib_digits", "--tracking-uri", "http://127.0.0.1:9"], "tracking URI 'http://127.0.0.1:9' is unreachable"),
    (["vib_digits", "--tracking-uri", "ftp://example"], "expected sqlite:///PATH"),
    (["vib_digits", "--gpus-per-trial", "64"], "--gpus-per-trial 64"),
    (["vib_digits", "--search", "optuna"], "--search optuna needs --trials N"),
    (["vib_digits", "--resume"], "--resume: no unfinished run of sweep 'vib_digits'"),
    ([], "name a sweep to run"),
    (["vib_digits", "--storage", "/proc/ray_results"], "--storage /proc/ray_results: /proc is not a writable directory"),
    (["vib_digits", "--storage", "/etc/hostname/x"], "--storage /etc/hostname/x: /etc/hostname is not a writable directory"),
]


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Every case of :data:`CASES` as a CLI subprocess in a workspace of its own, all started at
    once (each spends its seconds importing, not computing); case index -> (workspace, result)."""
    from tests.conftest import Workspace

    started = []
    for i, (argv, _) in enumerate(CASES):
        workspace = Workspace(tmp_path_factory.mktemp(f"case{i}"))
        args = workspace.args(*argv)
        for flag in ("--tracking-uri", "--storage"):  # the case's own value wins over the workspace's
            if flag in argv:
                j = args.index(flag, len(argv))
                del args[j : j + 2]
        process = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=workspace.root)
        started.append((workspace, process))
    done = {}
    for i, (workspace, process) in enumerate(started):
        stdout, stderr = process.communicate(timeout=300)
        done[i] = (workspace, subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


@pytest.mark.parametrize("case", range(len(CASES)), ids=[" ".join(c[0]) or "no-name" for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, refused):
    message = CASES[case][1]
    workspace, done = refused[case]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert not workspace.storage.exists(), "nothing may be written before the input is valid"


def test_list_shows_every_sweep_with_its_paper(workspace):
    from search_spaces import get_sweep, sweep_names

    done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", "--list"], capture_output=True, text=True,
                          timeout=60, cwd=workspace.root)
    assert done.returncode == 0
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["sweep", "trials", "objective", "dataset", "paper"]
    assert len(lines) == len(sweep_names())
    for name, line in zip(sweep_names(), lines):
        assert line.startswith(name) and get_sweep(name).paper in line
    # every column starts where its header does, for the longest names (simclr_dib_*) too
    for column in ("objective", "dataset", "paper"):
        start = header.index(column)
        assert all(line[start - 1] == " " and line[start] != " " for line in lines), column


def test_dry_run_of_a_gpu_sweep_prints_no_warning(workspace):
    """The memory estimate builds CompressAI's models, which call the deprecated torch.jit.script."""
    done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *workspace.args("dib_cifar", "--dry-run")],
                          capture_output=True, text=True, timeout=120, cwd=workspace.root)
    assert done.returncode == 0, done.stderr
    assert "device memory per trial" in done.stdout
    assert "Warning" not in done.stdout + done.stderr, done.stderr


def test_dry_run_lists_the_grid_and_destinations(workspace):
    done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *workspace.args("vib_digits", "--dry-run", "--seeds", "2",
                           "--set", "latent_dim=8", "--gpus-per-trial", "0.5")],
                          capture_output=True, text=True, timeout=60, cwd=workspace.root)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "trials: 20 = 10 beta x 2 seed(s)" in out.replace(" x 1 latent_dim", "")
    assert out.count("latent_dim") >= 1 and "seed=1" in out
    assert "0.5 GPU" in out and str(workspace.storage) in out and workspace.tracking_uri in out
    assert not workspace.storage.exists() and not (workspace.root / "mlflow.db").exists()
