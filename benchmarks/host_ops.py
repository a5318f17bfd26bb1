"""Kernels a training step launches outside its compiled region: what CUDA graphs cannot replay.

With ``compile=cudagraphs`` the region the harness compiles (and the backward of its outputs) is
replayed as two CUDA graphs a step, and everything else the step does is launched op by op from
Python. At ``dib_cifar``'s batch of 128 the H100 machine's host took longer to launch that than
the GPU took to run it (docs/benchmarks.md), so this count is what bounds a graphed step.

It is counted on any device, without compiling: ``torch.compile`` is replaced by a wrapper that
runs the function eagerly and marks it, and one epoch of the harness's own loop
(:func:`trainables.harness.train_epoch`, ``--steps`` full batches after a warm-up epoch) runs
under a ``TorchDispatchMode`` that attributes each aten op to the compiled forward, the backward
of its outputs, or the rest. Ops that make a view, allocate or only mark the profiler launch no
kernel and are not counted, and so are reads of a value to the host (``_local_scalar_dense``: a
host sync only when the tensor is on the GPU, which a CPU run cannot tell; ``python -m benchmarks
train_step`` counts the syncs on CUDA). Each objective runs its GPU sweep's first trial config
(random data of its dataset's shape) with the precision and layout that ``auto`` picks on CUDA,
and Adam fused as the harness builds it on CUDA, so the count is CUDA's whatever device runs it
(a batch of ``--batch-size``: the count does not depend on it).
"""

from __future__ import annotations

import argparse
import contextlib
import collections
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

NO_KERNEL = {"empty", "empty_strided", "_unsafe_view", "_record_function_enter_new", "_record_function_exit",
             "lift_fresh", "set_", "resize_", "_local_scalar_dense"}
FORWARD, BACKWARD, EAGER = "compiled forward", "compiled backward", "eager"


def launches_a_kernel(func) -> bool:
    """False for views (every return aliases an input, read-only), allocations and profiler marks."""
    if func.overloadpacket.__name__ in NO_KERNEL:
        return False
    aliases = [r.alias_info for r in func._schema.returns]
    return not (aliases and all(a is not None and not a.is_write for a in aliases))


class OpCounter(TorchDispatchMode):
    """Counts kernel-launching aten ops by phase, and the ops of the eager phase by name."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = EAGER
        self.kernels: collections.Counter[str] = collections.Counter()
        self.eager_ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if launches_a_kernel(func):
            self.kernels[self.phase] += 1
            if self.phase == EAGER:
                self.eager_ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


class Phases:
    """``torch.compile`` and ``Tensor.backward`` replaced, while active, by versions that set the
    counter's phase: the 'compiled' function's ops, and a backward started from one of its outputs.
    ``torch.optim.Adam`` is built fused, as the harness builds it on CUDA."""

    def __init__(self, counter: OpCounter) -> None:
        self.counter, self.outputs = counter, set()

    def compile(self, function, *args, **kwargs):
        def marked(*a, **k):
            previous, self.counter.phase = self.counter.phase, FORWARD
            try:
                result = function(*a, **k)
            finally:
                self.counter.phase = previous
            self.outputs = {id(t) for t in tree_leaves(result) if isinstance(t, torch.Tensor)}
            return result
        return marked

    def __enter__(self) -> Phases:
        self.saved = torch.compile, torch.Tensor.backward, torch.optim.Adam
        backward, adam, phases = torch.Tensor.backward, torch.optim.Adam, self

        def marked_backward(tensor, *args, **kwargs):
            previous = phases.counter.phase
            phases.counter.phase = BACKWARD if id(tensor) in phases.outputs else EAGER
            try:
                return backward(tensor, *args, **kwargs)
            finally:
                phases.counter.phase = previous

        torch.compile, torch.Tensor.backward = self.compile, marked_backward
        torch.optim.Adam = lambda *args, **kwargs: adam(*args, **{**kwargs, "fused": True})
        return self

    def __exit__(self, *exc) -> None:
        torch.compile, torch.Tensor.backward, torch.optim.Adam = self.saved


def gpu_config(objective: str, batch_size: int, steps: int) -> dict[str, Any]:
    """The GPU sweep's first trial config, with the precision and layout ``auto`` resolves to on CUDA."""
    from benchmarks.train_step import trial_config
    from trainables.config import DeviceConfig
    from trainables.data import DATASET_SIZES
    from trainables.fast_path import FastPath
    from trainables.objectives import build_objective

    config = trial_config(objective, torch.device("cuda"), steps)
    config = {**config, "batch_size": batch_size, "_images": steps * batch_size, "compile": "on"}
    shape, _, _, classes = DATASET_SIZES[config["dataset"]]
    resolved = FastPath.for_model(DeviceConfig.from_mapping(config), torch.device("cuda"), build_objective(config, shape, classes))
    return {**config, "precision": "bf16" if resolved.autocast_dtype is not None else "fp32",
            "channels_last": "on" if resolved.channels_last else "off"}


def count(objective: str, batch_size: int, steps: int, device: torch.device) -> OpCounter:
    """The counter after one epoch of ``steps`` batches (a warm-up epoch before it is not counted)."""
    from benchmarks.train_step import random_dataset
    from trainables.harness import build_training, train_epoch

    config = gpu_config(objective, batch_size, steps)
    data = random_dataset(config, device)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    counter = OpCounter()
    torch.manual_seed(0)
    with Phases(counter):
        model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, device)
        generator = torch.Generator(device=device).manual_seed(0)
        for epoch in (1, 2):
            model.start_epoch(epoch)
            with counter if epoch == 2 else contextlib.nullcontext():
                train_epoch(model, optimizer, aux_optimizer, ema, data, config, generator, epoch, fast)
    return counter


def main(argv: list[str] | None = None) -> int:
    from benchmarks.train_step import GPU_SWEEPS

    parser = argparse.ArgumentParser(prog="python -m benchmarks host_ops")
    parser.add_argument("--objectives", default="dib", help=f"comma-separated, any of {', '.join(GPU_SWEEPS)}")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="full batches in the counted epoch")
    parser.add_argument("--top", type=int, default=8, help="eager ops listed by name")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = sorted(set(objectives) - set(GPU_SWEEPS))
    if unknown:
        parser.error(f"--objectives: unknown {', '.join(unknown)}; expected any of {', '.join(GPU_SWEEPS)}")

    from benchmarks.common import machine

    print(f"machine: {machine()}; device {args.device}; kernels a step (mean of {args.steps} steps), "
          f"the GPU sweeps' configs as auto resolves them on CUDA")
    print(f"{'objective':<12} {FORWARD:>17} {BACKWARD:>18} {EAGER + ' (not graphed)':>20}  busiest eager ops")
    for objective in objectives:
        counter = count(objective, args.batch_size, args.steps, torch.device(args.device))
        per_step = {phase: counter.kernels[phase] / args.steps for phase in (FORWARD, BACKWARD, EAGER)}
        busiest = ", ".join(f"{name} {n / args.steps:.3g}" for name, n in counter.eager_ops.most_common(args.top))
        print(f"{objective:<12} {per_step[FORWARD]:>17.1f} {per_step[BACKWARD]:>18.1f} {per_step[EAGER]:>20.1f}  "
              f"{busiest}", flush=True)
    return 0
