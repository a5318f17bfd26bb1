"""The deterministic cross-entropy baseline, the IB zoo's reference without a bottleneck: ``ce``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.ce.config import CeConfig

SLICE = ObjectiveSlice(name="ce", config=CeConfig, model="trainables.objectives.ce.model:CrossEntropyBaseline")
