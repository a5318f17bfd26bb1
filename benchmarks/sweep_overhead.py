"""What Ray Tune, MLflow logging, parquet and reports add to a sweep of short trials.

The same 8 trials (vib_digits, 8 betas, K = 256) run in one invocation, one at a time on one
thread each (torch, BLAS and OpenMP): in-process through :func:`trainables.harness.run_trial`
(the baseline: compute only), then through the whole CLI path (``python -m orchestrator.sweep``:
local Ray start, Tune, checkpoints, the MLflow callback on SQLite, parquet and reports), and with
``--running-ray`` the same command against a Ray started beforehand (``ray start --head``, then
``--address auto``), as a sweep on a cluster runs. ``--set KEY=VALUE`` changes the trials' config
both ways (``--set checkpoint_min_seconds=0`` checkpoints every epoch, as before that key existed). Overhead = (CLI wall clock - in-process wall
clock) / in-process wall clock. The issue's target: at most 10% for trials of
about 20 s (275 epochs, the default, take about 20 s on one core of the 2-core CI machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BETAS = "[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sweep_overhead")
    parser.add_argument("--epochs", type=int, default=275, help="epochs per trial (275: about 20 s on one core)")
    parser.add_argument("--running-ray", action="store_true",
                        help="also time the CLI against a Ray started beforehand (ray start --head), as on a cluster")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every trial, both ways (e.g. checkpoint_min_seconds=0: a checkpoint "
                             "every epoch, as before that key existed)")
    args = parser.parse_args(argv)

    from benchmarks.common import machine
    from search_spaces.spec import parse_sets
    from search_spaces import get_sweep
    from trainables.harness import run_trial

    sets = {"beta": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0], "latent_dim": 256, **parse_sets(args.set)}
    spec = get_sweep("vib_digits").with_overrides(sets, epochs=args.epochs)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch, threadpool_limits(1):  # as Ray's OMP_NUM_THREADS=1 does
        start = time.perf_counter()
        per_trial = []
        for config in spec.trial_configs():
            t = time.perf_counter()
            run_trial(config, data_dir=scratch, device=torch.device("cpu"), report=lambda metrics, directory: None)
            per_trial.append(time.perf_counter() - t)
        in_process = time.perf_counter() - start

        def cli(name: str, *extra: str) -> float:
            """Wall clock of the whole CLI run (a fresh MLflow SQLite file each time)."""
            command = [sys.executable, "-m", "orchestrator.sweep", "vib_digits", "--set", f"beta={BETAS}",
                       "--set", "latent_dim=256", "--epochs", str(args.epochs), "--max-concurrent", "1",
                       "--storage", str(Path(scratch) / name), "--tracking-uri", f"sqlite:///{scratch}/{name}.db",
                       *(f for item in args.set for f in ("--set", item)), *extra]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"the sweep failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            return seconds

        local = cli("local")
        running = None
        if args.running_ray:  # as on a cluster: Ray is up before the sweep and stays up after it
            ray = [sys.executable, "-m", "ray.scripts.scripts"]
            subprocess.run([*ray, "start", "--head", "--num-cpus", "2", "--include-dashboard=false",
                            "--disable-usage-stats"], check=True, capture_output=True, cwd=scratch)
            try:
                running = cli("running", "--address", "auto")
            finally:
                subprocess.run([*ray, "stop"], capture_output=True, cwd=scratch)
    print(f"machine: {machine()}")
    print(f"8 trials x {args.epochs} epochs, one at a time, one thread each{''.join(f', {item}' for item in args.set)}")
    print(f"in-process (compute only): {in_process:.1f} s (trials {min(per_trial):.1f}-{max(per_trial):.1f} s)")
    print(f"through the CLI, starting local Ray (Ray, Tune, MLflow, parquet, reports): {local:.1f} s, "
          f"overhead {(local - in_process) / in_process:.1%} of the trials' compute")
    if running is not None:
        print(f"through the CLI on an already running Ray (--address auto): {running:.1f} s, "
              f"overhead {(running - in_process) / in_process:.1%}")
    return 0
