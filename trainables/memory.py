"""A trial's device memory, estimated before anything runs (``--dry-run``, ``--trials-per-gpu``).

Three parts, each computed from the trial's config:

- **data**: the whole dataset lives on the device as float32 images plus int64 labels
  (``trainables.data``), after ``train_subset`` / ``test_subset``;
- **state**: every parameter and buffer, its gradient, Adam's two moments (and the EMA copy when
  ``ema_decay > 0``);
- **activations**: the tensors autograd saves for the backward pass of one training step at
  ``batch_size``, counted by running the objective's ``forward`` on PyTorch's ``meta`` device
  (shapes only: no memory, no compute) under ``saved_tensors_hooks``. Counted in fp32; bf16
  autocast saves many of them in half the bytes, so this is an upper bound for the fast path.
  An objective whose forward needs real values (class-balanced sampling, a MoCo queue read)
  falls back to a real CPU forward at a small batch, scaled linearly to ``batch_size``.

Not counted: the CUDA context of each process (several hundred MiB, outside PyTorch's
allocator), the allocator's fragmentation and cuDNN workspaces, and the evaluation passes after
training (attacks on ``eval_subset`` examples at ``eval_batch_size``), which run after the
training step's activations are freed. ``docs/benchmarks.md`` compares the estimate with the
peak PyTorch measured on a GPU.

``--dry-run`` runs on the driver, which never imports torch or a model, so it asks a child process:
:func:`estimate_in_subprocess` runs ``python -m trainables.memory``, which reads a JSON list of flat trial
configs on stdin and writes one JSON estimate per config on stdout. Torch is imported only inside the
estimate, so the driver can import this module for :class:`MemoryEstimate` and :func:`format_bytes`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

FLOAT32_BYTES = 4
LABEL_BYTES = 8
ADAM_STATE_PER_PARAMETER = 2  # exp_avg, exp_avg_sq
FALLBACK_BATCH = 16


@dataclass(frozen=True)
class MemoryEstimate:
    data_bytes: int
    state_bytes: int
    activation_bytes: int
    traced_on: str  # "meta", or "cpu (batch N, scaled)" for the fallback

    @property
    def total_bytes(self) -> int:
        return self.data_bytes + self.state_bytes + self.activation_bytes

    def describe(self) -> str:
        return (f"{format_bytes(self.total_bytes)} = data {format_bytes(self.data_bytes)} + weights, gradients "
                f"and Adam {format_bytes(self.state_bytes)} + saved activations {format_bytes(self.activation_bytes)} "
                f"(fp32, an upper bound under bf16; traced on {self.traced_on})")


def format_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def estimate_trial_memory(config: Mapping[str, Any]) -> MemoryEstimate:
    """Estimate the device memory one trial of ``config`` holds at its peak (module docstring)."""
    import torch

    from trainables.data import DATASET_SIZES
    from trainables.objectives import build_objective

    dataset = config["dataset"]
    if dataset not in DATASET_SIZES:
        raise ValueError(f"dataset {dataset!r}: expected one of {', '.join(DATASET_SIZES)}")
    shape, train_size, test_size, classes = DATASET_SIZES[dataset]
    train_size = _subset(train_size, int(config.get("train_subset", 0)))
    test_size = _subset(test_size, int(config.get("test_subset", 0)))
    data_bytes = (train_size + test_size) * (math.prod(shape) * FLOAT32_BYTES + LABEL_BYTES)

    torch.manual_seed(0)
    objective = build_objective(dict(config), shape, classes)
    parameters = sum(p.numel() * p.element_size() for p in objective.parameters())
    buffers = sum(b.numel() * b.element_size() for b in objective.buffers())
    copies = 1 + 1 + ADAM_STATE_PER_PARAMETER  # weights, gradients, Adam's moments
    state_bytes = parameters * copies + buffers
    if float(config.get("ema_decay", 0.0)) > 0:
        state_bytes += parameters + buffers

    batch = min(int(config["batch_size"]), train_size)
    try:
        activation_bytes, traced_on = _saved_bytes(objective.to("meta"), shape, classes, batch, "meta"), "meta"
    except (NotImplementedError, RuntimeError):
        small = min(batch, FALLBACK_BATCH)
        torch.manual_seed(0)
        objective = build_objective(dict(config), shape, classes)
        activation_bytes = _saved_bytes(objective, shape, classes, small, "cpu") * batch // small
        traced_on = f"cpu (batch {small}, scaled to {batch})"
    return MemoryEstimate(data_bytes, state_bytes, activation_bytes, traced_on)


def _subset(size: int, subset: int) -> int:
    return min(size, subset) if subset > 0 else size


def _saved_bytes(objective: nn.Module, shape: tuple[int, ...], classes: int, batch: int, device: str) -> int:
    """Bytes autograd saves for backward in one training forward, parameters excluded."""
    import torch

    parameters = {p.untyped_storage()._cdata for p in objective.parameters()}
    counted: set[int] = set()
    alive: list[torch.Tensor] = []  # keeps every storage alive, so no address is reused while counting
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        # one storage saved twice (ReLU's output is also the next layer's input) is counted once
        nonlocal saved
        storage = tensor.untyped_storage()
        if storage._cdata not in parameters and storage._cdata not in counted:
            counted.add(storage._cdata)
            alive.append(tensor)
            saved += storage.nbytes()
        return tensor

    objective.train()
    x = torch.rand((batch, *shape), device=device)
    y = torch.arange(batch, device=device) % classes
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        objective(x, y)
    return saved


class EstimateFailed(RuntimeError):
    """The child process of :func:`estimate_in_subprocess` gave no estimate; the message is one line."""


def estimate_in_subprocess(configs: Sequence[Mapping[str, Any]]) -> list[MemoryEstimate]:
    """:func:`estimate_trial_memory` of each config, computed by ``python -m trainables.memory`` in a child process.

    The child imports torch and the models, so the caller need not. Raises :class:`EstimateFailed` with the child's
    one-line error (a model that cannot be built, torch missing on this machine).
    """
    root = str(Path(__file__).resolve().parents[1])  # where ``trainables`` is, whatever the caller's directory
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    done = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(list(map(dict, configs))),
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise EstimateFailed(lines[-1].strip() if lines else f"python -m {__name__} exited with {done.returncode}")
    return [MemoryEstimate(**fields) for fields in json.loads(done.stdout)]


def _main() -> int:
    """Flat trial configs as a JSON list on stdin; their estimates as a JSON list on stdout, or one line on stderr."""
    import contextlib
    import warnings

    real_stdout = sys.stdout
    try:
        configs = json.load(sys.stdin)
        # stdout carries the answer only: anything a library prints goes to stderr
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # CompressAI scripts functions with torch.jit.script, deprecated in torch 2.14 (a FutureWarning at import
            # and when its entropy models are built): nothing the user can act on.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
            estimates = [dataclasses.asdict(estimate_trial_memory(config)) for config in configs]
    except Exception as error:  # the caller shows this line, not a traceback
        first = (str(error).strip().splitlines() or [""])[0]
        print(f"{type(error).__name__}: {first}" if first else type(error).__name__, file=sys.stderr)
        return 1
    json.dump(estimates, real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
