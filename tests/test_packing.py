"""``--trials-per-gpu``: fractional GPU resources pack several trials onto one GPU, through real Tune.

This machine has no GPU, so the sweep runs in a child process on a local Ray that declares one
(``ray.init(num_gpus=1)``); Tune then schedules by that resource exactly as on a GPU node, and
each trial, finding no CUDA device, trains on the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from orchestrator.sweep import main
from orchestrator.tuner import COMPILE_CACHE, LaunchOptions, worker_environment

SCRIPT = textwrap.dedent("""
    import sys
    import ray
    import orchestrator.sweep as sweep

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    sweep._local_gpus = lambda: 1  # what nvidia-smi would say on a one-GPU machine
    sys.exit(sweep.main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_four_trials_share_one_gpu_at_once(workspace):
    args = workspace.args("vib_digits", "--smoke", "--set", "beta=[0.001, 0.01, 0.1, 1.0]", "--epochs", "12",
                          "--trials-per-gpu", "4", "--cpus-per-trial", "0.5")
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = workspace.run_dirs("vib_digits")
    intervals = []
    for result_file in run_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines()]
        assert len(rows) == 12
        intervals.append((rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]))
    assert len(intervals) == 4
    # all four were training at the same moment: the last to start started before the first to end
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)


def test_dry_run_shows_the_memory_estimate_and_the_packing(capsys, workspace):
    assert main(workspace.args("dib_cifar", "--dry-run", "--trials-per-gpu", "4")) == 0
    out = capsys.readouterr().out
    assert "resources per trial: 4 CPU, 0.25 GPU" in out
    assert "device memory per trial (estimate, largest of 7 configs):" in out
    assert "4 trials per GPU:" in out


def test_dry_run_says_when_the_cpus_not_the_gpu_share_limit_the_packing(capsys, workspace, monkeypatch):
    import os

    import orchestrator.sweep as sweep

    monkeypatch.setattr(os, "cpu_count", lambda: 16)  # a 16-core, one-GPU node, as the H100 machine
    monkeypatch.setattr(sweep, "_local_gpus", lambda: 1)
    assert main(workspace.args("dib_cifar", "--dry-run", "--trials-per-gpu", "8")) == 0
    assert ("this machine (16 CPU, 1 GPU): at most 4 trial(s) at once, limited by its CPUs "
            "(--cpus-per-trial 2 would run 8, as the GPU share allows)") in capsys.readouterr().out


@pytest.mark.parametrize("cpus,gpus,max_concurrent,available,expected", [
    (2, 1 / 8, None, {"CPU": 16, "GPU": 1}, "at most 8 trial(s) at once"),
    (3, 0.5, None, {"CPU": 16, "GPU": 2}, "at most 4 trial(s) at once"),  # the GPUs limit: no CPU advice
    (1, 0, None, {"CPU": 2, "GPU": 0}, "at most 2 trial(s) at once"),
    (4, 0.25, 2, {"CPU": 16, "GPU": 1}, "at most 4 trial(s) at once; --max-concurrent 2 runs 2"),
    (4, 1 / 8, None, {"CPU": 2, "GPU": 0}, "cannot hold one trial (too few CPU, GPU); the run would be refused here"),
    (1, 1, None, {"CPU": 2, "GPU": 0}, "cannot hold one trial (too few GPU); the run would be refused here"),
])
def test_concurrency_summary(cpus, gpus, max_concurrent, available, expected, tmp_path):
    from orchestrator.dry_run import concurrency_summary

    options = LaunchOptions(tmp_path, "run", tmp_path, cpus_per_trial=cpus, gpus_per_trial=gpus,
                            max_concurrent=max_concurrent)
    line = concurrency_summary(options, available)
    assert line.startswith(f"this machine ({available['CPU']:g} CPU, {available['GPU']:g} GPU): ")
    assert line.endswith(expected), line


@pytest.mark.parametrize("flags,message", [
    (["--trials-per-gpu", "0"], "--trials-per-gpu 0: expected an integer >= 1"),
    (["--trials-per-gpu", "2", "--gpus-per-trial", "0.5"], "give one of them"),
])
def test_trials_per_gpu_rejects_bad_values(flags, message, capsys, workspace):
    assert main(workspace.args("dib_cifar", "--dry-run", *flags)) == 2
    assert message in capsys.readouterr().err


def test_compiled_kernels_are_cached_on_the_sweeps_storage(tmp_path):
    options = LaunchOptions(tmp_path, "run", tmp_path / "data", cpus_per_trial=1, gpus_per_trial=0)
    assert worker_environment(options) == {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / COMPILE_CACHE)}
