"""How a trial's training step runs on its device: precision, memory format and compilation.

Three keys of :class:`trainables.config.DeviceConfig` choose the path:

- ``precision``: ``"auto"`` (bf16 autocast for models with 2-d convolutions on CUDA, fp32
  otherwise), ``"bf16"`` (autocast on any device; on the CPU it exists so the logic can be tested
  without a GPU), or ``"fp32"`` (no autocast). The MLP objectives stay fp32 under ``auto``: their
  small layers are bound by kernel launches, so bf16 gains nothing and pays the casts
  (docs/benchmarks.md).
- ``channels_last``: ``"auto"`` (on for models with 2-d convolutions on CUDA), ``"on"`` or
  ``"off"``. The model's 4-d weights and every batch are put in NHWC layout, which cuDNN's
  tensor-core convolutions want; a model without convolutions is never touched. With it on CUDA,
  ``torch.backends.cudnn.benchmark`` is turned on (shapes are fixed, so cuDNN times its
  algorithms once per shape and keeps the fastest; results are then not bitwise reproducible).
- ``compile``: ``"off"`` (the default), ``"on"`` or ``"cudagraphs"``. On, the objective's
  ``training_step`` (its training ``forward`` and its aux loss, if any:
  :meth:`trainables.objectives.base.Objective.training_step`) is compiled with ``torch.compile``
  (inductor, static shapes; AOTAutograd compiles its backward with it); ``"cudagraphs"`` compiles
  it with ``mode="reduce-overhead"``, so that on CUDA the compiled forward and backward are
  replayed as CUDA graphs, one launch each instead of hundreds. The batch's gather and
  augmentation, the optimiser steps, the EMA update and all evaluation (``evaluate``,
  ``logits``, probes, attacks) stay eager (``python -m benchmarks host_ops`` counts their
  kernels). Everything compiles in the first epoch: one graph for the full batch and one for the
  epoch's shorter last batch, if any, and nothing after. That needs every forward to read no
  Python number that changes between epochs (dynamo bakes one in as a constant and recompiles
  when it changes, so such values are 0-d buffers, e.g. a warm-up weight that ``start_epoch``
  fills) and to break no graph (no ``.item()``, no data-dependent shapes);
  ``tests/test_fast_path.py`` checks both for every objective. The cache of compiled kernels is
  shared by the trials of a sweep (``TORCHINDUCTOR_CACHE_DIR``, set by ``orchestrator.tuner``),
  so only the first trial of a configuration pays the full compile.

  Off by default: at the GPU sweeps' batch sizes the eager step is bound by the host, ``"on"``
  gains little there and costs every trial a compile at its start, and ``"cudagraphs"``'s results
  are not yet checked against eager's on a GPU (docs/benchmarks.md has the measurements).

Only the training step and the per-epoch test pass run under autocast. Pieces that need fp32
upcast themselves inside it: the entropy models' likelihoods, the Gaussian KL, and the k-NN
distances (``trainables.estimators``). The attacks, probes, information plane and Jacobians after
training run in fp32, so a robustness figure never depends on the training precision's gradients.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainables.config import DeviceConfig


@dataclass(frozen=True)
class FastPath:
    """The resolved choices for one trial on one device."""

    device_type: str
    autocast_dtype: torch.dtype | None  # None: fp32, no autocast
    channels_last: bool
    compile: bool
    cudagraphs: bool = False  # compile with mode="reduce-overhead": the step replayed as CUDA graphs

    @classmethod
    def for_model(cls, choices: DeviceConfig, device: torch.device, model: nn.Module) -> FastPath:
        """What the trial's parsed device keys resolve to for ``model`` on ``device``."""
        precision, layout, compiled = choices.precision, choices.channels_last, choices.compile
        cuda = device.type == "cuda"
        convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
        bf16 = precision == "bf16" or (precision == "auto" and cuda and convolutional)
        nhwc = convolutional and (layout == "on" or (layout == "auto" and cuda))
        return cls(device.type, torch.bfloat16 if bf16 else None, nhwc, compiled != "off", compiled == "cudagraphs")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the training step and the test pass run in."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """NHWC weights if channels_last (in place), and cuDNN's autotuner with it on CUDA."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.device_type == "cuda":  # set both ways: a reused worker process keeps the last trial's flag
            torch.backends.cudnn.benchmark = self.channels_last
        return model

    def maybe_compile(self, objective: nn.Module) -> nn.Module:
        """Compile the objective's ``training_step`` in place if asked; its state dict is unchanged.

        Called after the EMA copy is made, so the copy (used for evaluation only) stays eager.
        Only ``training_step`` (the training ``forward`` and the aux loss) is compiled; the
        methods the harness calls directly (``evaluate``, ``logits``) and ``forward`` called on
        its own are not.

        Dynamo is reset first: Tune reuses a worker process for a sweep's next trial, dynamo keeps
        compiled graphs per code object (every objective's ``training_step`` is
        :meth:`Objective.training_step`'s code), and trials whose steps differ (a latent size, a
        temperature the forward reads as a Python number, infomax's critic) would each add graphs
        until dynamo's recompile limit sent later trials to eager without a word. The reset also
        frees the last trial's CUDA graphs. Inductor's disk cache is kept: trials that differ only
        in a loss weight (beta, alpha: 0-d buffers, :meth:`Objective.register_weight`) trace the
        same graph, and every one after the first loads its kernels from the cache.
        """
        if self.compile:
            torch.compiler.reset()
            objective.training_step = torch.compile(objective.training_step, dynamic=False,
                                                    mode="reduce-overhead" if self.cudagraphs else None)
        return objective

    def prepare_batch(self, x: Tensor) -> Tensor:
        """A batch in the layout the model's weights use (a no-op when already so)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


def without_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Leave any enclosing autocast on ``device`` for a block that must compute in fp32.

    A no-op on ``meta``, where ``trainables.memory`` traces shapes and autocast does not exist.
    (A plain comparison: ``torch.amp.is_autocast_available`` would break ``torch.compile``'s graph.)
    """
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
