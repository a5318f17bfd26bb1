"""The Conditional Entropy Bottleneck (Fischer 2020; Fischer and Alemi 2020): ``ceb``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.ceb.config import CebConfig

SLICE = ObjectiveSlice(name="ceb", config=CebConfig, model="trainables.objectives.ceb.model:ConditionalEntropyBottleneck",
                       report="trainables.objectives.ceb.report")
