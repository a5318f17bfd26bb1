"""Where a short sweep's wall clock goes before, between and after its trials.

Runs ``orchestrator.sweep.main`` in this process on a small ``vib_digits`` sweep (``--trials``
betas x ``--epochs`` epochs, one trial at a time, local Ray) with timers around the driver's
phases: the tracking check (a new MLflow SQLite schema), ``ray.init``, ``Tuner.fit``, writing
parquet and reports, and stopping Ray. Each trial's start, first result and end are the times
the driver's Tune callbacks saw them. Times are seconds since the benchmark started, after its
own imports.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

BETAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sweep_phases")
    parser.add_argument("--trials", type=int, default=2, choices=range(1, len(BETAS) + 1), metavar=f"1..{len(BETAS)}")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    import ray
    from ray.tune import Tuner

    import orchestrator.outputs as outputs
    import orchestrator.sweep as sweep
    import orchestrator.tracking as tracking
    from benchmarks.common import machine
    from orchestrator.progress import ProgressCallback

    imports = time.perf_counter() - started
    origin = time.time()
    phases: list[tuple[str, float, float]] = []

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*a, **k):
            begin = time.time() - origin
            try:
                return original(*a, **k)
            finally:
                phases.append((label, begin, time.time() - origin))

        setattr(owner, name, wrapper)

    timed(tracking, "check_tracking", "tracking check (MLflow store)")
    timed(ray, "init", "ray.init")
    timed(ray, "shutdown", "ray.shutdown (in a thread, beside the outputs)")
    timed(Tuner, "fit", "Tuner.fit")
    timed(outputs, "write_outputs", "parquet, reports, MLflow artifacts")
    trials: dict[str, dict[str, float]] = {}

    def seen(event: str):
        original = getattr(ProgressCallback, event)

        def wrapper(self, **info):  # Tune passes iteration, trials, trial, ... by keyword
            trials.setdefault(f"trial beta={info['trial'].config['beta']:g}", {}).setdefault(event, time.time() - origin)
            return original(self, **info)

        setattr(ProgressCallback, event, wrapper)

    for event in ("on_trial_start", "on_trial_result", "on_trial_complete"):
        seen(event)
    with tempfile.TemporaryDirectory() as scratch:
        code = sweep.main(["vib_digits", "--set", f"beta={BETAS[:args.trials]}", "--set", "latent_dim=256",
                           "--epochs", str(args.epochs), "--max-concurrent", "1", "--storage", f"{scratch}/runs",
                           "--tracking-uri", f"sqlite:///{scratch}/mlflow.db"])
    total = time.time() - origin
    if code != 0:
        print(f"the sweep failed with exit code {code}")
        return code
    for label, times in trials.items():
        phases.append((f"{label}: started -> first result", times["on_trial_start"], times["on_trial_result"]))
        phases.append((f"{label}: first result -> done", times["on_trial_result"], times["on_trial_complete"]))
    print(f"machine: {machine()}")
    print(f"vib_digits (K = 256), {args.trials} trials x {args.epochs} epochs, one at a time, local Ray")
    print(f"imports before the timer (ray, Tune, the orchestrator, MLflow): {imports:.2f} s")
    for label, begin, end in sorted(phases, key=lambda p: p[1]):
        print(f"  {begin:7.2f} -> {end:7.2f} s  {end - begin:6.2f} s  {label}")
    print(f"  main() returned at {total:.2f} s")
    return 0
