"""An exponential moving average of a model's weights whose update never waits on the GPU."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class SyncFreeEMA(AveragedModel):
    """torch's ``AveragedModel`` EMA (parameters and buffers), minus a host sync per update.

    ``AveragedModel.update_parameters`` copies its step counter ``n_averaged`` (a CPU tensor) to
    the model's device on every call, to hand it to the averaging function; on CUDA that copy is
    a host sync in every training step (``python -m benchmarks train_step`` counted 1.0 a step for
    vib). The EMA's averaging function ignores the counter, so this update does not copy it; the
    first-update test reads it on the CPU. Same state dict (checkpoints load either way), same
    values (``tests/test_ema.py``).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        ours = [t.detach() for t in itertools.chain(self.module.parameters(), self.module.buffers())]
        theirs = [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
        if len(ours) != len(theirs):
            raise ValueError(f"EMA of a model with {len(ours)} tensors updated from one with {len(theirs)}")
        if self.n_averaged == 0:  # the first update copies; n_averaged lives on the CPU, so no sync
            for average, current in zip(ours, theirs):
                average.copy_(current)
        else:
            groups: dict[tuple[torch.device, torch.dtype], tuple[list, list]] = {}
            for average, current in zip(ours, theirs):
                averages, currents = groups.setdefault((average.device, average.dtype), ([], []))
                averages.append(average)
                currents.append(current)
            for averages, currents in groups.values():  # one foreach lerp per device and dtype
                self.multi_avg_fn(averages, currents, self.n_averaged)
        self.n_averaged += 1
