"""InfoMax between image halves with InfoNCE / NWJ bounds (Tschannen et al. 2020): ``infomax``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.infomax.config import InfomaxConfig

SLICE = ObjectiveSlice(name="infomax", config=InfomaxConfig, model="trainables.objectives.infomax.model:InfoMax",
                       report="trainables.objectives.infomax.report")
