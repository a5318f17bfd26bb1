"""The contract between an objective and the harness that trains it.

An objective is an ``nn.Module`` built from the flat trial config. ``forward(x, y)`` returns a
dict of named 0-d tensors (batch means), one of them ``loss``, which the harness backpropagates;
the others are logged as ``train/<name>``. ``evaluate(x, y)`` returns batch means of the
evaluation metrics (logged as ``test/<name>``). The harness owns the loop, the optimiser steps,
EMA, reporting and checkpoints; an objective never steps an optimiser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class Objective(nn.Module):
    """Base class of every objective.

    Args:
        config: the flat trial config (JSON scalars); each objective reads its own keys.
        input_shape: shape of one input example, ``(C, H, W)``.
        num_classes: number of labels in the dataset.
    """

    name: str = ""

    def __init__(self, config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.config = dict(config)
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training terms for one batch: 0-d tensors, batch means, including ``loss``."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Evaluation metrics for one batch (0-d tensors, batch means); called in eval mode."""
        raise NotImplementedError
