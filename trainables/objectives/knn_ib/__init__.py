"""IB with a k-NN entropy estimator and zero-entropy noise (Kirsch, Lyle and Gal 2020): ``knn_ib``."""

from trainables.objectives import ObjectiveSlice
from trainables.objectives.knn_ib.config import KnnIbConfig

SLICE = ObjectiveSlice(name="knn_ib", config=KnnIbConfig, model="trainables.objectives.knn_ib.model:KnnInformationBottleneck",
                       report="trainables.objectives.knn_ib.report")
