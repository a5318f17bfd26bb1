"""Deterministic IB with a CompressAI entropy model (Zhang et al., Entropy Constrained Compressive Representation Learning): ``dib``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.dib.config import DibConfig

SLICE = ObjectiveSlice(name="dib", config=DibConfig, model="trainables.objectives.dib.model:DeterministicInformationBottleneck",
                       report="trainables.objectives.dib.report")
