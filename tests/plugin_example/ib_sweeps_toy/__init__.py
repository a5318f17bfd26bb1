"""A toy objective from outside ib-sweeps: a linear classifier with a Gaussian channel on its logits, ``toy_linear``.

The entry point ``toy_linear = "ib_sweeps_toy:SLICE"`` (group ``ib_sweeps.objectives``, in this distribution's
pyproject.toml) names the slice below. This module imports only the torch-free config: the driver reads it, and the
model and sweeps modules are named by string so each side imports only its own.
"""

from trainables.objectives import ObjectiveSlice

from ib_sweeps_toy.config import ToyConfig

SLICE = ObjectiveSlice(name="toy_linear", config=ToyConfig, model="ib_sweeps_toy.model:ToyLinear",
                       sweeps="ib_sweeps_toy.sweeps")
