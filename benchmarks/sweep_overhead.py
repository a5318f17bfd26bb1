"""What the CLI path adds to a sweep: seconds once per sweep, and seconds per trial.

The same ``vib_digits`` trials (K = 256, ``--epochs`` epochs each, one at a time on one thread
each: torch, BLAS and OpenMP, as Ray's ``OMP_NUM_THREADS=1`` for a 1-CPU trial) run two ways:
in this process through :func:`trainables.harness.run_trial` (compute only), and through the
whole CLI, ``python -m orchestrator.sweep`` (interpreter start and imports, the tracking check on
a new MLflow SQLite file, local ``ray.init``, Tune, the trial worker's start and imports,
checkpoints, MLflow logging, parquet, reports, Ray's stop). Both run with N1 and with N2 trials
(``--trials N1,N2``); overhead(N) = CLI(N) - in-process(N) = fixed + per_trial * N, so each
repeat gives one fixed and one per-trial figure, printed as the mean and the min to max over
``--repeats``. A user plans a sweep of N trials of c seconds each as fixed + N * (c + per_trial).

What keeps the two halves comparable on a machine that does other work:

- **The same nice level.** Ray 2.60's raylet starts every worker process at nice 15 (its
  ``worker_niceness`` setting, default 15, read from the environment as ``RAY_worker_niceness``;
  only Ray's job supervisor sets it to 0), while the driver and an in-process trial keep the
  nice level they were started at. Under load nice 15 gives the CPU to everything else (issue
  17: on the shared machine the same two trials took 421 s at nice 15 against 36 s at nice 0).
  The benchmark sets ``RAY_worker_niceness`` to its own nice level (``--worker-niceness`` to
  choose another) and prints the nice levels it saw the trial workers at (read from ``/proc``).
- **Interleaved halves.** Each repeat runs, for N1 and then N2, an in-process run and a CLI run,
  the order of each pair alternating between repeats, so a change in the machine's load falls on
  both halves instead of on one.
- **The load, printed** before and after (``os.getloadavg``): a 1-minute load above the core
  count means the trials waited for a CPU and every figure is inflated.
- **One thread, both ways.** Ray gives a 1-CPU trial ``OMP_NUM_THREADS=1`` from its start; here
  ``torch.set_num_threads(1)`` and threadpoolctl's limit, entered again for every run, after a
  warm-up in-process trial of one epoch (untimed) has loaded every library the trials use
  (scikit-learn's OpenMP and SciPy's OpenBLAS load at the first information-plane measurement
  and, unlimited, start a thread per core, which on a loaded machine made the in-process trials
  the slower half).

``--running-ray`` also times the CLI against a Ray started beforehand (``ray start --head``, then
``--address auto``), as a sweep on a cluster runs. ``--compute-only`` times the in-process trials
alone, to price a config key: ``--compute-only --set infoplane_every=0`` against the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

BETAS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.3, 1.0]
WORKER_MARKERS = ("ray::", "default_worker.py")  # a Ray worker's command line (its process title, or before it is set)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sweep_overhead")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (20: about 6 s of compute on one core of the shared 2-core machine)")
    parser.add_argument("--trials", default="1,5", type=_trial_counts, metavar="N1,N2",
                        help=f"the two sweep sizes the fixed and per-trial seconds are fitted from (1 <= N1 < N2 <= {len(BETAS)})")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of both halves at both sizes")
    parser.add_argument("--worker-niceness", type=int, default=None,
                        help="RAY_worker_niceness for the CLI's trial workers (default: this process's own nice level)")
    parser.add_argument("--running-ray", action="store_true",
                        help="also time the CLI against a Ray started beforehand (ray start --head), as on a cluster")
    parser.add_argument("--compute-only", action="store_true", help="time only the in-process trials (to price a --set)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every trial, both ways (e.g. infoplane_every=0)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error(f"--epochs {args.epochs} and --repeats {args.repeats}: both must be >= 1")

    from threadpoolctl import threadpool_limits

    from benchmarks.common import load_average, machine, mean_and_range
    from search_spaces import get_sweep
    from search_spaces.spec import parse_sets
    from trainables.harness import run_trial

    sets = parse_sets(args.set)
    if "beta" in sets:
        parser.error(f"--set beta={sets['beta']!r}: the benchmark sets beta itself, one value per trial (--trials)")
    own_nice = os.nice(0)
    worker_nice = own_nice if args.worker_niceness is None else args.worker_niceness
    load_before = load_average()
    small, large = args.trials

    def in_process(n: int, scratch: str, epochs: int = args.epochs) -> float:
        """Wall clock of n trials run here, one thread each, as Ray's OMP_NUM_THREADS=1 gives a 1-CPU trial.

        The limit is set on every call: threadpoolctl limits the libraries loaded when it is
        entered, and scikit-learn's OpenMP and SciPy's OpenBLAS load during the first trial (the
        information plane's regression), where they would otherwise start a thread per core.
        """
        spec = get_sweep("vib_digits").with_overrides({"beta": BETAS[:n], "latent_dim": 256, **sets}, epochs=epochs)
        start = time.perf_counter()
        with threadpool_limits(1):
            for config in spec.trial_configs():
                run_trial(config, data_dir=scratch, device=torch.device("cpu"), report=lambda metrics, directory: None)
        return time.perf_counter() - start

    seen_nice: set[int] = set()

    def cli(n: int, scratch: str, name: str, *extra: str) -> float:
        """Wall clock of one whole CLI run, on a new storage folder and a new MLflow SQLite file."""
        command = [sys.executable, "-m", "orchestrator.sweep", "vib_digits", "--set", f"beta={BETAS[:n]}",
                   "--set", "latent_dim=256", "--epochs", str(args.epochs), "--max-concurrent", "1",
                   "--storage", str(Path(scratch) / name), "--tracking-uri", f"sqlite:///{scratch}/{name}.db",
                   *(f for item in args.set for f in ("--set", item)), *extra]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=scratch,
                                   env={**os.environ, "RAY_worker_niceness": str(worker_nice)})
        watcher = threading.Thread(target=_watch_worker_niceness, args=(process, seen_nice), daemon=True)
        watcher.start()
        output, _ = process.communicate()
        seconds = time.perf_counter() - start
        watcher.join()
        if process.returncode != 0:
            raise RuntimeError(f"the sweep failed (exit {process.returncode}):\n{output[-3000:]}")
        return seconds

    torch.set_num_threads(1)
    runs: dict[str, dict[int, list[float]]] = {"in-process": {small: [], large: []}}
    with tempfile.TemporaryDirectory() as scratch:
        in_process(1, scratch, epochs=1)  # warm-up, untimed: loads every library the trials use
        ray = [sys.executable, "-m", "ray.scripts.scripts"]
        ways = [] if args.compute_only else [("CLI, local Ray", ())]
        if args.running_ray and not args.compute_only:  # Ray is up before the sweeps and stays up between them
            subprocess.run([*ray, "start", "--head", "--num-cpus", "2", "--include-dashboard=false",
                            "--disable-usage-stats"], check=True, capture_output=True, cwd=scratch,
                           env={**os.environ, "RAY_worker_niceness": str(worker_nice)})
            ways.append(("CLI, running Ray (--address auto)", ("--address", "auto")))
        runs.update({label: {small: [], large: []} for label, _ in ways})
        try:
            for repeat in range(args.repeats):
                for n in (small, large):
                    pair = [("in-process", None), *ways]
                    for label, extra in pair if repeat % 2 == 0 else pair[::-1]:
                        if extra is None:
                            seconds = in_process(n, scratch)
                        else:
                            seconds = cli(n, scratch, f"r{repeat}_n{n}_{len(extra)}", *extra)
                        runs[label][n].append(seconds)
                        print(f"  repeat {repeat + 1}, {n} trial{'s' * (n > 1)}, {label}: {seconds:.1f} s", flush=True)
        finally:
            if args.running_ray and not args.compute_only:
                subprocess.run([*ray, "stop"], capture_output=True, cwd=scratch)
    load_after = load_average()

    print(f"machine: {machine()}")
    print(f"load average (1, 5, 15 min): {load_before} before, {load_after} after")
    print(f"vib_digits (K = 256), {args.epochs} epoch{'s' * (args.epochs > 1)} a trial, one trial at a time on one thread"
          f"{''.join(f', {item}' for item in args.set)}; {small} and {large} trials, {args.repeats} interleaved repeats")
    compute = [s / n for n in (small, large) for s in runs["in-process"][n]]
    print(f"in-process compute per trial: {mean_and_range(compute, 's')}")
    if args.compute_only:
        return 0
    observed = ", ".join(map(str, sorted(seen_nice))) or "not seen (no /proc)"
    print(f"nice level: in-process trials and the CLI's driver {own_nice}; trial workers "
          f"RAY_worker_niceness={worker_nice}, seen at {observed}")
    for label, _ in ways:
        overhead = {n: [cli_s - in_s for cli_s, in_s in zip(runs[label][n], runs["in-process"][n])] for n in (small, large)}
        per_trial = [(o2 - o1) / (large - small) for o1, o2 in zip(overhead[small], overhead[large])]
        fixed = [o1 - p * small for o1, p in zip(overhead[small], per_trial)]
        print(f"{label}: fixed {mean_and_range(fixed, 's')} per sweep, per trial {mean_and_range(per_trial, 's', 2)} "
              f"(mean (min to max) over {args.repeats} repeats)")
        print(f"  a sweep of N trials of c s of compute each, one at a time: about "
              f"{statistics.mean(fixed):.1f} + N x (c + {statistics.mean(per_trial):.2f}) s")
    return 0


def _trial_counts(text: str) -> tuple[int, int]:
    """``N1,N2`` with 1 <= N1 < N2 <= len(BETAS)."""
    try:
        small, large = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two trial counts N1,N2, e.g. 1,5") from None
    if not 1 <= small < large <= len(BETAS):
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1 <= N1 < N2 <= {len(BETAS)}")
    return small, large


def _watch_worker_niceness(process: subprocess.Popen, seen: set[int]) -> None:
    """Add to ``seen`` the nice level of every Ray worker below ``process``, every 0.5 s until it exits.

    Linux's ``/proc`` only; elsewhere nothing is seen. Ray's local processes (GCS, raylet, and
    the workers the raylet starts) are children of the driver, so only this sweep's workers are
    read, not those of another Ray on the same machine.
    """
    while process.poll() is None:
        try:
            table = {}  # pid: (parent pid, nice)
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        stat = Path(entry.path, "stat").read_text()
                    except OSError:
                        continue
                    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ... nice is the 17th
                    table[int(entry.name)] = (int(fields[1]), int(fields[16]))
        except OSError:
            return
        below = {process.pid}
        for _ in range(6):  # driver -> raylet -> worker, with room for wrappers
            below |= {pid for pid, (parent, _) in table.items() if parent in below}
        for pid in below - {process.pid}:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(marker in command for marker in WORKER_MARKERS):
                seen.add(table[pid][1])
        time.sleep(0.5)
