"""The config of ``infomax`` (Tschannen et al. 2020: MI bounds between image halves, invertible encoders). Torch-free.

Also the condition-number metric names, which the model logs and the driver-side report reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainables.config import Config, Rule, nonnegative, param, positive

ESTIMATOR_NAMES = ("infonce", "nwj")  # trainables.objectives.infomax.model.ESTIMATORS
CRITIC_NAMES = ("bilinear", "separable", "concat")  # trainables.objectives.infomax.model.CRITICS
ENCODER_NAMES = ("realnvp", "mlp")  # trainables.objectives.infomax.model.ENCODERS
CONDITION_PERCENTILES = (5, 25, 50, 75, 95)  # of g1's log condition number over the probe batch (the paper's bands)


def condition_metric(percentile: int) -> str:
    """The name under which the model logs a percentile of the log condition number and the report reads it."""
    return f"conditioning/log_condition_number_p{percentile:02d}"


@dataclass(frozen=True)
class InfomaxConfig(Config):
    estimator: str = param("infonce", "the MI lower bound maximised: infonce or nwj", choices=ESTIMATOR_NAMES)
    critic: str = param("bilinear", "bilinear x^T W y, separable phi1(x)^T phi2(y), concat phi([x, y])",
                        choices=CRITIC_NAMES)
    encoder: str = param("realnvp", "realnvp (additive couplings, invertible) or mlp (residual blocks)",
                         choices=ENCODER_NAMES)
    encoder_depth: int = positive(30, "coupling layers / residual blocks (paper: 30)")
    encoder_hidden: int = positive(512, "width of the two hidden layers of each (paper: 512)")
    init_scale: float = nonnegative(1e-4, "std of each block's last layer at init: near-identity encoders "
                                          "(notebook: 1e-4)")
    separable_hidden: int = positive(100, "hidden width of the separable critic's two MLPs (notebook: 100)")
    separable_embed: int = positive(100, "their output (embedding) size (notebook: 100)")
    concat_hidden: int = positive(200, "hidden width of the concat critic's MLP (notebook: 200)")
    mi_batch_size: int = param(128, "pairs per test MI estimate: InfoNCE is capped at log of this", low=2)
    condition_every: int = positive(1, "epochs between condition-number measurements (also after epoch 1 and the "
                                       "last)")
    condition_batch: int = positive(128, "the fixed test examples whose Jacobians are measured")
    probe_train_subset: int = nonnegative(0, "training examples the linear probe is fitted on, every epoch "
                                             "(0 = all)")
    adversarial: bool = param(False, "the paper's adversarial encoder: fool a linear classifier, keep I_EST high")
    adversarial_weight: float = nonnegative(1.0, "weight of the encoder's uniform-label cross-entropy")

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("eval_batch_size", "mi_batch_size"), lambda t: t["eval_batch_size"] >= t["mi_batch_size"],
             "expected eval_batch_size >= mi_batch_size (each test estimate uses exactly mi_batch_size pairs)",
             ({"eval_batch_size": 64, "mi_batch_size": 128},)),
    )
