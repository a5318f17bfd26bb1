"""The deep variational information bottleneck (Alemi, Fischer, Dillon and Murphy, ICLR 2017): ``vib``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.vib.config import VibConfig

SLICE = ObjectiveSlice(name="vib", config=VibConfig, model="trainables.objectives.vib.model:VariationalInformationBottleneck")
