"""SimCLR with the deterministic IB's rate term (Zhang et al., section II.D): ``simclr_dib``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.simclr_dib.config import SimclrDibConfig

SLICE = ObjectiveSlice(name="simclr_dib", config=SimclrDibConfig, model="trainables.objectives.simclr_dib.model:SimCLRDeterministicIB",
                       report="trainables.objectives.simclr_dib.report")
