"""Images per second of the training step, per objective: the fast path against the plain fp32 path.

For each objective, the first trial config of one of its sweeps (on CUDA the CIFAR/MNIST sweep,
on the CPU the ``*_digits`` one), trained by the harness's own loop
(:func:`trainables.harness.train_epoch`) on random data of that dataset's shape, ``--steps``
full batches an epoch (the step's cost does not depend on pixel values). Every row is timed
over ``--repeats`` epochs after one warm-up epoch, and adds one change to the row above it:

1. plain fp32: ``precision=fp32``, ``channels_last=off``, CompressAI's own ``EntropyBottleneck``,
   and the loss read with ``.item()`` after every step (what a loop that logs each step does);
2. metrics read once an epoch (the harness's accumulation on the device);
3. the sync-free entropy bottleneck (objectives with an entropy model);
4. bf16 autocast;
5. channels_last (image encoders on CUDA);
6. ``torch.compile`` (only with ``--compile``; its compile time is excluded by the warm-up);
7. on CUDA with ``--compile``, ``compile=cudagraphs`` instead: the compiled step replayed as CUDA graphs.

On CUDA it also counts host syncs in one epoch of rows 1 and 5 (``torch.cuda.set_sync_debug_mode``),
and compares the peak memory of the fast path with :func:`trainables.memory.estimate_trial_memory`.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

import torch

GPU_SWEEPS = {"dib": "dib_cifar", "simclr_dib": "simclr_dib_cifar", "hybrid": "hybrid_cifar",
              "knn_ib": "knn_ib_cifar", "vib": "vib_mnist", "infomax": "infomax_mnist"}
# The rate term on from the first step (no cross-entropy warm-up); the batch for ResNet-18 DIB.
OVERRIDES: dict[str, dict[str, Any]] = {"dib": {"warmup_epochs": 0, "batch_size": 512},
                                        "simclr_dib": {"warmup_epochs": 0}}


def rows(objective: str, device: torch.device, use_compile: bool) -> list[tuple[str, dict[str, Any], bool, bool]]:
    """(label, config overrides, stock EntropyBottleneck?, read the loss every step?) per row."""
    plain = {"precision": "fp32", "channels_last": "off", "compile": "off"}
    out = [("plain fp32 (loss.item() every step)", plain, True, True),
           ("+ metrics read once an epoch", plain, True, False)]
    if objective in ("dib", "simclr_dib"):
        out.append(("+ sync-free entropy bottleneck", plain, False, False))
    current = {**plain, "precision": "bf16"}
    out.append(("+ bf16 autocast", current, False, False))
    if device.type == "cuda" and objective in ("dib", "simclr_dib", "hybrid", "knn_ib"):
        current = {**current, "channels_last": "on"}
        out.append(("+ channels_last", current, False, False))
    if use_compile:
        out.append(("+ torch.compile", {**current, "compile": "on"}, False, False))
        if device.type == "cuda":
            out.append(("+ CUDA graphs (compile=cudagraphs)", {**current, "compile": "cudagraphs"}, False, False))
    return out


def trial_config(objective: str, device: torch.device, steps: int) -> dict[str, Any]:
    from search_spaces import get_sweep

    sweep = GPU_SWEEPS[objective] if device.type == "cuda" else f"{objective}_digits"
    config = {**get_sweep(sweep).trial_configs()[0], **OVERRIDES.get(objective, {})}
    if device.type != "cuda":
        config["batch_size"] = min(int(config["batch_size"]), 128)
    return {**config, "epochs": 1000, "train_subset": 0, "_images": steps * int(config["batch_size"]), "_sweep": sweep}


def random_dataset(config: dict[str, Any], device: torch.device):
    from trainables.data import DATASET_SIZES, Dataset

    shape, _, _, classes = DATASET_SIZES[config["dataset"]]
    generator = torch.Generator().manual_seed(0)
    n = config["_images"]
    x = torch.rand((n, *shape), generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return Dataset(config["dataset"], x.to(device), y.to(device), x[:256].to(device), y[:256].to(device), classes)


def use_stock_bottleneck(model: torch.nn.Module) -> None:
    """Swap every sync-free bottleneck back to CompressAI's class (same parameters, same outputs)."""
    from compressai.entropy_models import EntropyBottleneck

    from trainables.entropy_models import SyncFreeEntropyBottleneck

    for module in model.modules():
        if isinstance(module, SyncFreeEntropyBottleneck):
            module.__class__ = EntropyBottleneck


def timed_epoch(objective, optimizer, aux_optimizer, ema, data, config, generator, number: int, fast) -> float:
    """Seconds of one :func:`trainables.harness.train_epoch`, the device's queue drained on both sides."""
    from trainables.config import parse_trial
    from trainables.harness import train_epoch

    config = parse_trial(config)  # outside the timed region, as the harness parses once per trial
    cuda = data.train_x.device.type == "cuda"
    objective.start_epoch(number)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_epoch(objective, optimizer, aux_optimizer, ema, data, config, generator, number, fast)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_row(config: dict[str, Any], data, device: torch.device, stock: bool, read_every_step: bool,
             repeats: int) -> dict[str, float]:
    from trainables.harness import build_training

    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    objective, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, device)
    if stock:
        use_stock_bottleneck(objective)
    if read_every_step:
        def read_loss(module, args, terms) -> None:  # a forward hook that returned a value would replace terms
            terms["loss"].item()

        objective.register_forward_hook(read_loss)
    generator = torch.Generator(device=device).manual_seed(0)

    def epoch(number: int) -> float:
        return timed_epoch(objective, optimizer, aux_optimizer, ema, data, config, generator, number, fast)

    epoch(1)  # warm-up: cuDNN autotuning, allocator, compilation
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = [epoch(2 + i) for i in range(repeats)]
    result = {"images_per_s": len(data.train_y) / statistics.median(seconds)}
    if device.type == "cuda":
        result["peak_bytes"] = torch.cuda.max_memory_allocated()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                epoch(2 + repeats)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        steps = len(data.train_y) // int(config["batch_size"])
        result["syncs_per_step"] = sum("synchroniz" in str(w.message) for w in caught) / steps
    del objective, optimizer, aux_optimizer, ema
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks train_step")
    parser.add_argument("--objectives", default=",".join(GPU_SWEEPS), help="comma-separated (default: all six)")
    parser.add_argument("--steps", type=int, default=None, help="full batches an epoch (default: 40 on CUDA, 8 on CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per row (median reported)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (compile=on; on CUDA also compile=cudagraphs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from benchmarks.common import machine
    from trainables.memory import estimate_trial_memory, format_bytes

    device = torch.device(args.device)
    steps = args.steps or (40 if device.type == "cuda" else 8)
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = sorted(set(objectives) - set(GPU_SWEEPS))
    if unknown:
        parser.error(f"--objectives: unknown {', '.join(unknown)}; expected any of {', '.join(GPU_SWEEPS)}")
    print(f"machine: {machine()}; device {device}")
    for objective in objectives:
        config = trial_config(objective, device, steps)
        data = random_dataset(config, device)
        print(f"\n{objective} ({config['_sweep']}, batch {config['batch_size']}, {steps} steps an epoch)")
        baseline = None
        for label, overrides, stock, read_every_step in rows(objective, device, args.compile):
            result = time_row({**config, **overrides}, data, device, stock, read_every_step, args.repeats)
            baseline = baseline or result["images_per_s"]
            extra = ""
            if "syncs_per_step" in result:
                extra = f"  {result['syncs_per_step']:.1f} syncs/step  peak {format_bytes(result['peak_bytes'])}"
            speed = result["images_per_s"]
            print(f"  {label:<40} {speed:>10,.0f} images/s  {speed / baseline:5.2f}x{extra}")
        if device.type == "cuda":
            estimate = estimate_trial_memory({**config, "train_subset": config["_images"], "test_subset": 256,
                                              "precision": "fp32"})
            print(f"  memory estimate (trainables.memory, fp32): {estimate.describe()}")
    return 0
