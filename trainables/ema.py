"""An exponential moving average of a model's weights, warmed up, whose update never waits on the GPU."""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_decay(decay: float, updates_so_far: int) -> float:
    """The decay of the update that follows ``updates_so_far`` averaged ones: ``min(decay, (1 + t) / (10 + t))``.

    TensorFlow's ``tf.train.ExponentialMovingAverage(decay, num_updates=t)`` rule (timm's ModelEmaV3
    warms up too, with another formula). Why: the average starts as the model's initial weights, and without
    a warm-up decay 0.999 keeps ``0.999 ** t`` of them in it (93% after the 70 updates of 5 digits
    epochs), so a short run evaluated its untrained initialisation. With it the first updates follow
    the model closely (decay 0.1 at t = 0, 0.5 at t = 8, 0.9 at t = 80, 0.99 at t = 890) and
    ``decay`` binds from ``t = (10 * decay - 1) / (1 - decay)`` on (8,990 for 0.999). The VIB demo
    itself used ``ExponentialMovingAverage(0.999, zero_debias=True)``, no warm-up (``zero_debias``
    acts only on averages of tensors, not of variables); at its 120,000 updates the difference is
    below anything measurable (``trainables/objectives/vib/model.py``).
    """
    return min(decay, (1.0 + updates_so_far) / (10.0 + updates_so_far))


class SyncFreeEMA(AveragedModel):
    """An EMA of a model's parameters and buffers with TensorFlow's warm-up, without a host sync per update.

    Update ``t`` (``t`` = ``n_averaged`` before it, the updates already averaged) sets
    ``average <- d * average + (1 - d) * current`` with ``d = warmup_decay(decay, t)``
    (:func:`warmup_decay`: TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``; timm's
    EMA warms up as well), starting from the weights the model had when this copy was made (as
    TensorFlow's shadow variables start at the variables' initial values; torch's first update
    instead copies the model, i.e. decay 0 at t = 0).

    It subclasses torch's ``AveragedModel`` for its state dict (``module.*`` and ``n_averaged``), so
    that a resumed run continues from the saved ``n_averaged`` exactly as an uninterrupted one
    would. ``AveragedModel.update_parameters`` copies ``n_averaged`` (a CPU tensor) to the model's
    device on every call; on CUDA that is a host sync in every training step.
    Here ``n_averaged`` is only read on the CPU, to make the decay a Python float, and the update is
    one ``torch._foreach_lerp_`` per device and dtype: no sync (``tests/test_ema.py``).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay={decay!r}: expected a number in [0, 1]")
        super().__init__(model, use_buffers=True)
        self.decay = float(decay)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        ours = [t.detach() for t in itertools.chain(self.module.parameters(), self.module.buffers())]
        theirs = [t.detach() for t in itertools.chain(model.parameters(), model.buffers())]
        if len(ours) != len(theirs):
            raise ValueError(f"EMA of a model with {len(ours)} tensors updated from one with {len(theirs)}")
        decay = warmup_decay(self.decay, int(self.n_averaged))  # n_averaged lives on the CPU: no sync
        groups: dict[tuple[torch.device, torch.dtype], tuple[list, list]] = {}
        for average, current in zip(ours, theirs):
            averages, currents = groups.setdefault((average.device, average.dtype), ([], []))
            averages.append(average)
            currents.append(current.to(average.device))
        for averages, currents in groups.values():
            if torch.is_floating_point(averages[0]) or torch.is_complex(averages[0]):
                torch._foreach_lerp_(averages, currents, 1.0 - decay)  # one kernel per device and dtype
            else:  # integer buffers (BatchNorm's num_batches_tracked), as torch's EMA averages them
                for average, current in zip(averages, currents):
                    average.copy_(average * decay + current * (1.0 - decay))
        self.n_averaged += 1
