"""The contract between an objective and the harness that trains it.

An objective is an ``nn.Module`` built from the trial's parsed config (:class:`trainables.config.TrialConfig`).
``forward(x, y)`` returns a dict of named 0-d tensors (batch means), one of them ``loss``, which the harness
backpropagates; the others are logged as ``train/<name>``; a compression term is ``rate_bits`` (bits per example). ``evaluate(x, y)`` returns batch means of the
evaluation metrics (logged as ``test/<name>``). The harness owns the loop, the optimiser steps,
EMA, reporting and checkpoints; an objective never steps an optimiser.

Optional hooks, with defaults that do nothing:

- ``logits(x)``: class logits of pixels in [0, 1], differentiable in ``x`` — what the attacks
  of ``trainables.evaluation`` differentiate (one sample for a stochastic encoder; the attack
  averages gradients over samples).
- ``aux_parameters()`` / ``aux_loss()``: parameters trained only by an auxiliary loss with their
  own optimiser (CompressAI's entropy-model quantiles); the main optimiser never sees them, and
  ``loss`` must give them no gradient (so one backward of ``loss + aux_loss`` trains both:
  :meth:`Objective.training_step`).
- ``start_epoch(epoch)``: called before each training epoch (1-based), e.g. for warm-up.
- ``epoch_metrics(data, epoch)``: extra metrics measured after an epoch on the data (a dict of
  floats named ``split/name``, e.g. a linear probe's ``probe/test_acc``), called in eval mode.
- ``final_evaluations(data)``: after training, ``(metrics, rows)``: flat metrics for the last
  report and rows for ``evaluations.parquet``, each ``{"evaluation", "metric", "value", ...}``
  (e.g. the classifier's singular values, or decoders fitted on the frozen encoder).
  The harness calls it before the attacks, so it may fit what ``logits`` needs.
- ``representation(x)``: the deterministic representation f(x) of pixels ``x``, ``(B, d)``, e.g.
  for probes and for the information plane (:mod:`trainables.evaluation.info_plane`), which adds
  zero-entropy noise to it; ``None`` (the default): the objective has none to measure.
- ``posterior(x)``: for an encoder whose p(z | x) is a diagonal Gaussian (VIB, CEB), its
  ``(mean, std)``, each ``(B, d)``; ``None`` (the default) otherwise. The default
  ``representation_sample`` draws from it, and the information plane also bounds I(X; Z) with it
  (:mod:`trainables.gaussian_mi`).
- ``representation_sample(x)``: for a stochastic encoder, ``(z, conditional_entropy)``: one
  sample of Z given ``x`` (``(B, d)``) and h(Z | X = x) in nats (``(B,)``); the information
  plane uses it instead of ``representation`` when it is not ``None``. The default draws
  ``z = mean + std * eps`` from ``posterior`` with h(Z | X = x) of that Gaussian, and is ``None``
  without one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.gaussian_mi import gaussian_draw


class Objective(nn.Module):
    """Base class of every objective.

    Args:
        trial: the trial's parsed config, kept as ``self.trial``; ``self.config`` is the objective's own part (its
            slice's dataclass), ``self.trial.training`` the training loop's (seed, epochs, batch sizes). Both were
            checked when parsed. (Not ``self.training``: that is ``nn.Module``'s train/eval flag.)
        input_shape: shape of one input example, ``(C, H, W)``.
        num_classes: number of labels in the dataset.
    """

    name: str = ""

    def __init__(self, trial: TrialConfig, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.name = trial.objective
        self.config = trial.own
        self.trial = trial
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training terms for one batch: 0-d tensors, batch means, including ``loss``."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Evaluation metrics for one batch (0-d tensors, batch means); called in eval mode."""
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, differentiable in ``x``; objectives without a classifier do not define it."""
        raise NotImplementedError(f"objective {self.name!r} has no classifier to attack")

    def training_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``(terms, total)``: the terms of ``forward`` (with ``aux_loss`` among them if the objective has one), and
        the 0-d tensor the harness backpropagates, ``loss + aux_loss``.

        This is what ``compile=on | cudagraphs`` compiles, so the aux loss is inside the compiled graph. One backward
        trains both optimisers' parameters, because ``loss`` gives the aux parameters no gradient and ``aux_loss``
        gives the others none (CompressAI's ``EntropyBottleneck.loss`` detaches them). CompressAI's training example
        computes the aux loss after the main step; here it is computed before, with the same parameters as ``loss``:
        the main parameters train exactly as there, and the quantiles get the same updates one step earlier
        (``tests/test_harness.py`` checks both).
        """
        terms = self(x, y)
        aux = self.aux_loss()
        if aux is None:
            return terms, terms["loss"]
        return {**terms, "aux_loss": aux}, terms["loss"] + aux

    def register_weight(self, name: str, value: float) -> None:
        """A loss weight from the config (beta, alpha) as a 0-d fp32 buffer, not a Python number.

        ``torch.compile`` specialises its graph on every Python number the forward reads; with a buffer every trial
        of a beta sweep shares one graph (and inductor's cache). The fp32 value is what the Python number becomes
        when it multiplies an fp32 tensor, so results are unchanged. Not persistent: the config sets it.
        """
        self.register_buffer(name, torch.tensor(float(value), dtype=torch.float32), persistent=False)

    def aux_parameters(self) -> list[nn.Parameter]:
        return []

    def aux_loss(self) -> torch.Tensor | None:
        return None

    def start_epoch(self, epoch: int) -> None:
        """Called before training epoch ``epoch`` (1-based)."""

    def epoch_metrics(self, data: Any, epoch: int) -> dict[str, float]:
        """Extra per-epoch metrics (``data`` is a ``trainables.data.Dataset``); none by default."""
        return {}

    def final_evaluations(self, data: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Post-training metrics and ``evaluations.parquet`` rows; none by default."""
        return {}, []

    def representation(self, x: torch.Tensor) -> torch.Tensor | None:
        """The deterministic representation f(x), (B, d); None: no representation to measure."""
        return None

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A Gaussian encoder's p(z | x) = N(mean, diag std^2) as ``(mean, std)``, each (B, d); None by default."""
        return None

    def representation_sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A stochastic encoder's sample of Z given ``x`` (B, d) and h(Z | X = x) in nats (B,).

        By default one draw ``z ~ N(mean, diag std^2)`` of :meth:`posterior` and that Gaussian's
        entropy, sum_k log std_k + d/2 log(2 pi e); None when there is no posterior. The
        information plane's I(X; Z) is then the k-NN h(Z) on these draws minus the mean of that
        entropy: the same ruler as a deterministic encoder's, whose h(Z | X) is that of
        zero-entropy noise, 0.
        """
        posterior = self.posterior(x)
        if posterior is None:
            return None
        return gaussian_draw(*posterior)
