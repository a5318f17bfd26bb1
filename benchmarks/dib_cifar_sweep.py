"""The ``dib_cifar`` sweep on one GPU: the fast path with packed trials against the paper's setup.

Both sides train the ``dib_cifar`` objective (ResNet-18, cifar stem, mean-scale hyperprior,
crop+flip, Adam, the rate term on) on CIFAR-10-shaped random images (50,000 by default; the
time of an epoch does not depend on pixel values, and CIFAR-10 itself cannot be downloaded on
every machine this runs on), in one invocation:

- **paper setup**: one trial on the GPU, batch 128 (the reference code's), a torchvision
  ``DataLoader`` over uint8 images with ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``
  and ``ToTensor`` (``--workers`` processes), fp32, contiguous layout, CompressAI's own
  ``EntropyBottleneck``. Timed over ``--baseline-images`` images and scaled to an epoch.
- **fast path**: ``--trials-per-gpu`` processes at once on the GPU (what ``--trials-per-gpu``
  gives a Tune sweep), each with the dataset on the device, batch ``--batch-size`` (512), on-device crop+flip,
  bf16 autocast, channels_last and the sync-free bottleneck (``--compile on`` or ``cudagraphs``: compiled); after a warm-up epoch, all start
  together and each times ``--epochs`` epochs. Throughput = trials x epochs / wall clock.

PGD on 1,000 test images is timed both ways: PGD-7 and PGD-20 as two fp32 runs (paper setup),
and one PGD-20 run (fast path); neither drops settled examples here, since an untrained model on
random images tells nothing about how many would settle, so both are upper bounds (``python -m
benchmarks evaluation`` measures the dropping on a trained model).

The whole sweep (7 betas x 100 epochs + the attacks) is projected from these figures; process
start, dataset load, checkpoints and Tune's bookkeeping are not in it (``python -m benchmarks
sweep_overhead`` measures those).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

BETAS = 7
EPOCHS = 100
TRAIN_IMAGES = 50_000


def dib_config(**overrides: Any) -> dict[str, Any]:
    from search_spaces import get_sweep

    config = get_sweep("dib_cifar").trial_configs()[0]
    return {**config, "beta": 1.0, "warmup_epochs": 0, "epochs": 1000, **overrides}


def cifar_shaped(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n)


def device_dataset(images: np.ndarray, labels: np.ndarray, device: torch.device):
    from trainables.data import Dataset

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
    y = torch.from_numpy(labels).to(device)
    return Dataset("cifar10", x, y, x[:1000], y[:1000], 10)


def synchronized(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def pgd_seconds(model, data, steps_runs: list[list[int]]) -> float:
    from trainables.data import evaluation_subset
    from trainables.evaluation.attacks import pgd

    model.eval()
    x, y = evaluation_subset(data.test_x, data.test_y, 1000)  # the examples the harness attacks

    def run():
        for steps in steps_runs:
            pgd(model.logits, x, y, epsilon=8 / 255, step=2 / 255, steps=steps, drop_settled=False,
                generator=torch.Generator(device=x.device).manual_seed(0))

    run()  # warm-up
    return synchronized(run)[1]


def baseline(args) -> dict[str, float]:
    """The paper's setup, in this process."""
    from torch.utils.data import DataLoader

    from benchmarks.data_pipeline import torchvision_dataset
    from benchmarks.train_step import use_stock_bottleneck
    from trainables.harness import build_training

    device = torch.device("cuda")
    images, labels = cifar_shaped(args.baseline_images)
    config = dib_config(batch_size=128, precision="fp32", channels_last="off", compile="off")
    data = device_dataset(images[:1000], labels[:1000], device)
    torch.manual_seed(0)
    objective, optimizer, aux_optimizer, _, _, fast = build_training(config, data, device)
    use_stock_bottleneck(objective)
    objective.train()
    loader = DataLoader(torchvision_dataset(images, labels), batch_size=128, shuffle=True, num_workers=args.workers,
                        pin_memory=True, persistent_workers=True)

    def epoch() -> int:
        seen = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            terms = objective(x, y)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            aux = objective.aux_loss()
            aux_optimizer.zero_grad(set_to_none=True)
            aux.backward()
            aux_optimizer.step()
            seen += len(y)
        return seen

    epoch()  # warm-up: workers, cuDNN
    seen, seconds = synchronized(epoch)
    return {"epoch_s": seconds * TRAIN_IMAGES / seen,
            "pgd_s": pgd_seconds(objective, data, [[7], [20]])}


def worker(args) -> None:
    """One packed trial: warm up, wait for the others, time ``--epochs`` epochs, print JSON."""
    from trainables.harness import build_training, train_epoch

    device = torch.device("cuda")
    images, labels = cifar_shaped(args.images, seed=args.worker)
    data = device_dataset(images, labels, device)
    config = dib_config(batch_size=args.batch_size, precision="bf16", channels_last="on", compile=args.compile)
    torch.manual_seed(args.worker)
    objective, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, device)
    generator = torch.Generator(device=device).manual_seed(args.worker)
    train_epoch(objective, optimizer, aux_optimizer, ema, data, config, generator, 1, fast)  # warm-up
    torch.cuda.synchronize()
    ready = os.path.join(args.barrier, f"ready_{args.worker}")
    open(ready, "w").close()
    while len([f for f in os.listdir(args.barrier) if f.startswith("ready_")]) < args.trials_per_gpu:
        time.sleep(0.01)
    start = time.time()
    epochs = []
    for epoch in range(args.epochs):
        epochs.append(synchronized(lambda: train_epoch(objective, optimizer, aux_optimizer, ema, data, config,
                                                       generator, 2 + epoch, fast))[1])
    end = time.time()
    result = {"start": start, "end": end, "epochs": epochs, "peak_bytes": torch.cuda.max_memory_allocated()}
    if args.worker == 0:
        result["pgd_s"] = pgd_seconds(objective, data, [[7, 20]])
    print("RESULT " + json.dumps(result), flush=True)


def packed(args, trials: int) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as barrier:
        command = [sys.executable, "-m", "benchmarks", "dib_cifar_sweep", "--images", str(args.images),
                   "--epochs", str(args.epochs), "--trials-per-gpu", str(trials), "--barrier", barrier,
                   "--batch-size", str(args.batch_size)]
        command += ["--compile", args.compile]
        processes = [subprocess.Popen([*command, "--worker", str(i)], stdout=subprocess.PIPE, text=True)
                     for i in range(trials)]
        outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a packed trial failed: {[p.returncode for p in processes]}")
    results = [json.loads(line[len("RESULT "):]) for out in outputs for line in out.splitlines()
               if line.startswith("RESULT ")]
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    epochs = trials * args.epochs * args.images / TRAIN_IMAGES
    return {"trials": trials, "wall_s": wall, "epochs_per_s": epochs / wall,
            "epoch_s": float(np.median([e * TRAIN_IMAGES / args.images for r in results for e in r["epochs"]])),
            "peak_bytes": max(r["peak_bytes"] for r in results), "pgd_s": results[0]["pgd_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks dib_cifar_sweep")
    parser.add_argument("--images", type=int, default=TRAIN_IMAGES, help="training images per packed trial")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per packed trial")
    parser.add_argument("--packing", default="1,2,4", help="--trials-per-gpu values to time (comma-separated)")
    parser.add_argument("--baseline-images", type=int, default=12_800, help="images timed on the paper's setup")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the paper's setup")
    parser.add_argument("--batch-size", type=int, default=512, help="the fast path's batch (the sweep's is 128)")
    parser.add_argument("--compile", default="off", choices=("off", "on", "cudagraphs"),
                        help="the fast path's compile setting (trainables/fast_path.py)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trials-per-gpu", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("dib_cifar_sweep needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.worker is not None:
        worker(args)
        return 0

    from benchmarks.common import machine
    from trainables.memory import format_bytes

    print(f"machine: {machine()}")
    paper = baseline(args)
    paper_sweep = BETAS * (EPOCHS * paper["epoch_s"] + paper["pgd_s"])
    print(f"paper setup (DataLoader with {args.workers} workers, fp32, batch 128, one trial): "
          f"{paper['epoch_s']:.2f} s an epoch; PGD-7 + PGD-20 on 1,000 images {paper['pgd_s']:.2f} s")
    print(f"  projected dib_cifar sweep ({BETAS} x {EPOCHS} epochs + attacks): {paper_sweep / 60:.1f} min")
    best = None
    for trials in [int(t) for t in args.packing.split(",")]:
        r = packed(args, trials)
        sweep = BETAS * EPOCHS / r["epochs_per_s"] + BETAS * r["pgd_s"]
        print(f"fast path, batch {args.batch_size}, compile {args.compile}, {trials} trial(s) per GPU: {r['epoch_s']:.2f} s an epoch per trial, "
              f"{r['epochs_per_s']:.2f} epochs/s together; peak {format_bytes(r['peak_bytes'])} per trial; "
              f"PGD-20 (gives PGD-7) {r['pgd_s']:.2f} s; projected sweep {sweep / 60:.1f} min "
              f"({paper_sweep / sweep:.1f}x the paper setup)")
        best = min(best or sweep, sweep)
    print(f"best projected dib_cifar sweep: {best / 60:.1f} min against {paper_sweep / 60:.1f} min "
          f"({paper_sweep / best:.1f}x)")
    return 0
