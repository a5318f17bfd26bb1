"""The whole ``dib_cifar`` sweep on one GPU, end to end, every trial through the harness's own loop.

Each of the sweep's trial configs (7 betas x 100 epochs: the sweep's own settings, plus ``--set``
overrides) runs in a process of its own through :func:`trainables.harness.run_trial`, the loop
Tune's trainable calls: the per-epoch test pass, the checkpoints, and FGSM and PGD-7/20 on 1,000
test images after the last epoch. At most ``--trials-per-gpu`` run at once, and the next starts
when one ends, which is Tune's schedule with fractional GPUs. A trial's wall clock includes
everything its worker does: interpreter start, imports, the dataset put on the device, cuDNN's
autotuning, and compilation (one kernel cache per invocation, shared by its trials, as
``orchestrator.tuner`` shares one per sweep). What it leaves out is the driver's work (Tune,
MLflow, reports), which ``python -m benchmarks sweep_overhead`` measures.

The data are CIFAR-10-shaped random images (50,000 train, 10,000 test), not CIFAR-10, because
the machine this runs on may have no network. An epoch costs the same whatever the pixel values.
The attacks drop each example once it is misclassified, and with random labels few test examples
start correct, so the attack time here is a lower bound. Its upper bound, a PGD-20 run on all
1,000 images, is timed by ``python -m benchmarks dib_cifar_sweep``.

``--trials 0-3`` runs a subset of the trials, for when a command's time is limited. Split the
sweep into subsets that are each whole rounds of ``--trials-per-gpu`` trials; the sum of their
walls is then the whole sweep's. ``--paper`` first times the paper's setup (DataLoader, fp32,
batch 128: ``dib_cifar_sweep``'s baseline) in the same invocation, and projects it over the same
trials.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from benchmarks.dib_cifar_sweep import TRAIN_IMAGES, baseline, cifar_shaped, device_dataset

RESULT = "RESULT "
REPOSITORY = Path(__file__).resolve().parents[1]


def trial_configs(args) -> list[dict[str, Any]]:
    from search_spaces import get_sweep
    from search_spaces.spec import parse_sets

    return get_sweep("dib_cifar").with_overrides(parse_sets(args.set), epochs=args.epochs).trial_configs()


def parse_trials(text: str, count: int) -> list[int]:
    """``"all"``, ``"3"``, ``"0-3"`` or ``"0,2,5"``: trial indices in ``range(count)``."""
    if text == "all":
        return list(range(count))
    picked: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            picked += range(int(first), int(last or first) + 1)
    except ValueError:
        picked = []
    if not picked or any(not 0 <= i < count for i in picked) or len(set(picked)) != len(picked):
        raise ValueError(f"--trials {text!r}: expected 'all' or distinct indices (a-b ranges, commas) in 0-{count - 1}")
    return picked


def random_cifar(device: torch.device, train: int, test: int):
    """CIFAR-10's shapes and dtypes, random values: float images in [0, 1] on the device."""
    from trainables.data import Dataset

    every = device_dataset(*cifar_shaped(train + test), device)
    x, y = every.train_x, every.train_y
    return Dataset("cifar10", x[:train], y[:train], x[train:], y[train:], 10)


def worker(args) -> None:
    """One trial through ``run_trial``; prints when each epoch's report came, and the last metrics."""
    import trainables.harness as harness

    config = trial_configs(args)[args.worker]
    device = torch.device(args.device)
    harness.load_dataset = lambda *a, **k: random_cifar(device, args.images, args.test_images)
    reports: list[float] = []
    last: dict[str, Any] = {}

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        reports.append(time.time())
        if len(reports) % 10 == 0:  # progress on stderr, which the driver passes through
            print(f"  trial {args.worker}: epoch {len(reports)} at {reports[-1] - started:.1f} s", file=sys.stderr,
                  flush=True)
        last.clear()
        last.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})

    started = time.time()
    with tempfile.TemporaryDirectory() as data_dir:
        harness.run_trial(config, data_dir=data_dir, device=device, report=report)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    print(RESULT + json.dumps({"started": started, "reports": reports, "metrics": last, "peak_bytes": peak}),
          flush=True)


def run_trials(args, picked: list[int], environment: dict[str, str]) -> list[dict[str, Any]]:
    """Tune's schedule: ``--trials-per-gpu`` processes at a time, the next started when one exits."""
    command = [sys.executable, "-m", "benchmarks", "dib_cifar_full", "--device", args.device,
               "--images", str(args.images), "--test-images", str(args.test_images),
               *(["--epochs", str(args.epochs)] if args.epochs else []), *(f for item in args.set for f in ("--set", item))]
    waiting, running, done = list(picked), {}, []
    while waiting or running:
        while waiting and len(running) < args.trials_per_gpu:
            index = waiting.pop(0)
            process = subprocess.Popen([*command, "--worker", str(index)], stdout=subprocess.PIPE, text=True,
                                       env=environment)
            running[index] = (process, time.time())
            print(f"  trial {index} started", flush=True)
        time.sleep(0.2)
        for index, (process, spawned) in list(running.items()):
            if process.poll() is None:
                continue
            out = process.communicate()[0]
            del running[index]
            lines = [line[len(RESULT):] for line in out.splitlines() if line.startswith(RESULT)]
            if process.returncode or not lines:
                raise RuntimeError(f"trial {index} failed (exit {process.returncode}); its output:\n{out[-3000:]}")
            done.append({"index": index, "spawned": spawned, "exited": time.time(), **json.loads(lines[-1])})
            print(f"  trial {index} done", flush=True)
    return sorted(done, key=lambda r: r["index"])


def describe(result: dict[str, Any], config: dict[str, Any], origin: float) -> str:
    from trainables.memory import format_bytes

    reports = result["reports"]
    epochs = [b - a for a, b in zip(reports, reports[1:])]
    accuracy = result["metrics"].get("test/acc", float("nan"))
    return (f"  beta={config['beta']:g}: {result['spawned'] - origin:6.1f} -> {result['exited'] - origin:6.1f} s "
            f"({result['exited'] - result['spawned']:.1f} s); spawn to first report {reports[0] - result['spawned']:.1f} s; "
            f"median epoch {statistics.median(epochs) if epochs else float('nan'):.2f} s; {len(reports)} reports; "
            f"test/acc {accuracy:.3f}" + (f"; peak {format_bytes(result['peak_bytes'])}" if result["peak_bytes"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks dib_cifar_full")
    parser.add_argument("--trials-per-gpu", type=int, default=1, help="trials running at once (Tune's packing)")
    parser.add_argument("--trials", default="all", help="which trials: all, an index, a-b, or a comma list")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the sweep's 100)")
    parser.add_argument("--paper", action="store_true", help="also time the paper's setup and project it")
    parser.add_argument("--images", type=int, default=TRAIN_IMAGES, help="training images (random, CIFAR-shaped)")
    parser.add_argument("--test-images", type=int, default=10_000, help="test images")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("dib_cifar_full needs a CUDA GPU (or --device cpu, for a test)", file=sys.stderr)
        return 2
    if args.worker is not None:
        worker(args)
        return 0
    if args.trials_per_gpu < 1:
        parser.error(f"--trials-per-gpu {args.trials_per_gpu}: expected an integer >= 1")
    configs = trial_configs(args)
    try:
        picked = parse_trials(args.trials, len(configs))
    except ValueError as error:
        parser.error(str(error))

    from benchmarks.common import machine

    print(f"machine: {machine()}; device {args.device}")
    paper = None
    if args.paper:
        paper = baseline(SimpleNamespace(baseline_images=12_800, workers=4))
        print(f"paper setup (DataLoader with 4 workers, fp32, batch 128, one trial): {paper['epoch_s']:.2f} s an "
              f"epoch; PGD-7 + PGD-20 on 1,000 images {paper['pgd_s']:.2f} s")
    print(f"dib_cifar trials {picked} of {len(configs)}, {args.trials_per_gpu} at a time, "
          f"{configs[0]['epochs']} epochs each{''.join(f', {item}' for item in args.set)}", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache,
                       "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4"),  # as Ray sets it (cpus_per_trial)
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
        origin = time.time()
        results = run_trials(args, picked, environment)
        wall = time.time() - origin
    for result in results:
        print(describe(result, configs[result["index"]], origin))
    print(f"wall clock, {len(picked)} trial(s): {wall:.1f} s = {wall / 60:.2f} min")
    if paper is not None:
        epochs = sum(int(configs[i]["epochs"]) for i in picked)
        projected = epochs * paper["epoch_s"] * args.images / TRAIN_IMAGES + len(picked) * paper["pgd_s"]
        print(f"paper setup projected over the same trials: {projected:.1f} s = {projected / 60:.2f} min "
              f"({projected / wall:.1f}x this wall clock)")
    return 0
