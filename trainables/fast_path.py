"""How a trial's training step runs on its device: precision, memory format and compilation.

Three config keys (declared in ``search_spaces.spec.HARNESS_DEFAULTS``) choose the path:

- ``precision``: ``"auto"`` (bf16 autocast for models with 2-d convolutions on CUDA, fp32
  otherwise), ``"bf16"`` (autocast on any device; on the CPU it exists so the logic can be tested
  without a GPU), or ``"fp32"`` (no autocast: the plain path speed figures are ratios against).
  The MLP objectives stay fp32 under ``auto``: on an H100 bf16 made ``vib_mnist``'s step 0.80x
  and ``infomax_mnist``'s 0.77x as fast (launch-bound layers gain nothing and pay the casts;
  ``python -m benchmarks train_step``, docs/benchmarks.md).
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
  ``logits``, probes, attacks) stay eager: 19 kernels a step for dib_cifar's config
  (``python -m benchmarks host_ops``). Everything compiles in the first epoch:
  one graph for the full batch and one for the epoch's shorter last batch, if any, and nothing
  after. This holds because no objective's forward reads a Python number that changes between
  epochs (dynamo would bake it in as a constant and recompile when it changes: the DIB
  objectives' warm-up weight was ``self.epoch``, which recompiled the ResNet-18 step every epoch
  until the recompile limit of 8 sent the forward back to eager; it is now a 0-d buffer that
  ``start_epoch`` fills), and no forward breaks its graph (no ``.item()``, no data-dependent
  shapes). ``tests/test_fast_path.py`` checks both for every objective. The cache of compiled
  kernels is shared by the trials of a sweep (``TORCHINDUCTOR_CACHE_DIR``, set by
  ``orchestrator.tuner``), so only the first trial of a configuration pays the full compile.

  Why it is off by default: on the H100 machine, ResNet-18 DIB's step is bound by the host (at
  batch 128 the GPU worked 3.2 ms of a 21.5 ms step). ``"on"`` made the step 1.23x as fast at
  batch 512 but 1.01x at ``dib_cifar``'s batch 128, and a trial's first epoch then came about
  70 s after its start (four trials compiling at once);
  ``"cudagraphs"`` made it 3.97x (batch 128) and 2.55x (batch 512) as fast as eager, but its
  numbers have not yet been checked against eager's on a GPU (``python -m benchmarks
  profile_step``, ``train_step``; docs/benchmarks.md).

Only the training step and the per-epoch test pass run under autocast. Pieces that need fp32
upcast themselves inside it: the entropy models' likelihoods, the Gaussian KL, and the k-NN
distances (``trainables.estimators``). The attacks, probes, information plane and Jacobians after
training run in fp32, so a robustness figure never depends on the training precision's gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

PRECISIONS = ("auto", "fp32", "bf16")
SWITCHES = ("auto", "on", "off")
COMPILE_MODES = ("off", "on", "cudagraphs")


@dataclass(frozen=True)
class FastPath:
    """The resolved choices for one trial on one device."""

    device_type: str
    autocast_dtype: torch.dtype | None  # None: fp32, no autocast
    channels_last: bool
    compile: bool
    cudagraphs: bool = False  # compile with mode="reduce-overhead": the step replayed as CUDA graphs

    @classmethod
    def for_model(cls, config: Mapping[str, Any], device: torch.device, model: nn.Module) -> FastPath:
        precision = config.get("precision", "auto")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        layout = config.get("channels_last", "auto")
        if layout not in SWITCHES:
            raise ValueError(f"channels_last {layout!r}: expected one of {', '.join(SWITCHES)}")
        compiled = config.get("compile", "off")
        if compiled not in COMPILE_MODES:
            raise ValueError(f"compile {compiled!r}: expected one of {', '.join(COMPILE_MODES)}")
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

        Dynamo is reset first. Tune reuses a worker process for the next trial of a sweep, and
        dynamo keeps compiled graphs per code object: every objective's ``training_step`` is
        :meth:`Objective.training_step`'s code, and trials whose steps differ (a latent size, a
        temperature, which is a Python number the forward reads, infomax's critic) each add
        graphs. Without the reset, a worker's trials piled up graphs until dynamo's recompile
        limit (8), after which later trials trained eagerly, saying nothing. The reset also frees
        the last trial's CUDA graphs. Inductor's disk cache is kept: trials that differ only in a
        loss weight (beta, alpha: 0-d buffers, :meth:`Objective.register_weight`) trace the same
        graph, and every one after the first loads its kernels from the cache.
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
