"""Hybrid autoencoder + MoCo MI bound (Sinha, Song and Ermon, Hybrid Mutual Information Lower-bound Estimators): ``hybrid``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.hybrid.config import HybridConfig

SLICE = ObjectiveSlice(name="hybrid", config=HybridConfig, model="trainables.objectives.hybrid.model:HybridBound",
                       report="trainables.objectives.hybrid.report")
