"""Where a training step's time goes: ``torch.profiler`` over the harness's own epoch loop.

For one objective's GPU sweep config (as ``train_step`` builds it, random data of the dataset's
shape) at each ``--batch-sizes`` value: the wall time per step of an epoch of ``--steps`` steps
after a warm-up epoch, then one more epoch under the profiler, whose busiest ops (by self CUDA
time and by self CPU time) are printed. A step whose wall time is far above its CUDA time is
bound by the host: Python, launches, or a sync.
"""

from __future__ import annotations

import argparse

import torch


def profile(objective: str, batch_size: int, steps: int, device: torch.device, compiled: str, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from benchmarks.train_step import random_dataset, timed_epoch, trial_config
    from trainables.harness import build_training

    config = {**trial_config(objective, device, steps), "batch_size": batch_size, "_images": steps * batch_size,
              "compile": compiled}
    data = random_dataset(config, device)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def epoch(number: int) -> float:
        return timed_epoch(model, optimizer, aux_optimizer, ema, data, config, generator, number, fast)

    epoch(1)
    seconds = min(epoch(2), epoch(3))
    print(f"\n{objective}, batch {batch_size}, compile {compiled}: "
          f"{seconds / steps * 1e3:.2f} ms a step, {steps * batch_size / seconds:,.0f} images/s", flush=True)
    if rows <= 0:
        return
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        epoch(4)
    averages = prof.key_averages()
    for key in (["self_cuda_time_total"] if device.type == "cuda" else []) + ["self_cpu_time_total"]:
        print(averages.table(sort_by=key, row_limit=rows, max_name_column_width=60), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks profile_step")
    parser.add_argument("--objective", default="dib")
    parser.add_argument("--batch-sizes", default="128,512", help="comma-separated")
    parser.add_argument("--steps", type=int, default=30, help="steps an epoch")
    parser.add_argument("--compile", default="off", help="comma-separated compile values to run (off, on, cudagraphs)")
    parser.add_argument("--rows", type=int, default=15, help="ops printed per table (0: timings only)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from benchmarks.common import machine

    print(f"machine: {machine()}; device {args.device}")
    device = torch.device(args.device)
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        for compiled in args.compile.split(","):
            profile(args.objective, batch_size, args.steps, device, compiled, args.rows)
    return 0
