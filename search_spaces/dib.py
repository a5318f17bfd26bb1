"""Sweeps of the deterministic information bottleneck with a CompressAI entropy model (``dib``).

Zhang et al., "Entropy Constrained Compressive Representation Learning"
(../shared/papers/zhang-entropy-constrained-compressive-representation-learning.txt).
Loss: CE(g(round(h)), y) + beta * bits per dimension of round(h) under a learned entropy model;
beta = 0 is the cross-entropy baseline ("CE" in the paper's Table II).
"""

from search_spaces import register_sweep
from search_spaces.spec import SweepSpec

PAPER = "Zhang et al., Entropy Constrained Compressive Representation Learning"

BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0)
REPORTS = ("accuracy_vs_beta", "rate_vs_beta", "robustness", "active_dims_vs_beta", "spectra")
# The paper's optimiser: Adam 5e-3, cosine annealing, batch 128.
PAPER_OPTIMISER = {"batch_size": 128, "lr": 5e-3, "lr_schedule": "cosine"}
# Table II's two regimes.
REGULARIZED = {**PAPER_OPTIMISER, "weight_decay": 1e-4, "augment": "crop_flip", "crop_padding": 4}
UNREGULARIZED = {**PAPER_OPTIMISER, "weight_decay": 0.0, "augment": "none"}
# A CPU-sized smoke run of the ResNet sweeps: digits, a few hundred examples, one epoch.
# Smoke runs check the plumbing of every attack, not its numbers: a few iterations each.
SMOKE_ATTACKS = {"apgd_steps": 10, "apgd_targets": 2, "cw_binary_steps": 2, "cw_steps": 10}
RESNET_SMOKE = {"epochs": 1, "dataset": "digits", "train_subset": 256, "test_subset": 128, "eval_subset": 64,
                "warmup_epochs": 0, "crop_padding": 1, **SMOKE_ATTACKS}
# Every attack the suite has: robust accuracy is the worst case over them (docs/robustness.md).
EVALUATIONS = ("fgsm", "pgd", "apgd_ce", "apgd_dlr", "cw_l2")
# MNIST's standard L-inf budgets (Madry et al. 2018: 0.3; 0.1-0.3 across the literature), with PGD's
# step at eps/4 as on CIFAR-10; 8/255 barely moves a binarised digit.
MNIST_BUDGETS = {"fgsm_epsilons": "0.1,0.2,0.3", "pgd_epsilons": "0.1,0.2,0.3", "l2_epsilons": "1.0,2.0,3.0"}


def _resnet_sweep(name: str, description: str, dataset: str, epochs: int, config: dict) -> SweepSpec:
    return SweepSpec(
        name=name,
        description=description,
        paper=PAPER,
        objective="dib",
        dataset=dataset,
        epochs=epochs,
        config={**config, "checkpoint_every": 5, "eval_subset": 1000},
        grid={"beta": BETAS},
        evaluations=EVALUATIONS,
        reports=REPORTS,
        cpus_per_trial=4,
        gpus_per_trial=1,
        smoke=RESNET_SMOKE,
        smoke_grid={"beta": (0.0, 8.0)},
    )


register_sweep(_resnet_sweep(
    "dib_cifar",
    "Regularized ResNet-18 (cifar stem) on CIFAR-10, 100 epochs with crop+flip and weight decay 1e-4; "
    "beta in {0, 0.5, 1, 2, 4, 8, 32}; PGD-7/20 at 8/255 and FGSM (the paper's attacks), APGD-CE/DLR and CW-L2 on 1,000 test images (paper Table II, "
    "regularized: CE clean 86%; use --set stem=imagenet for the paper's stem).",
    "cifar10", 100, REGULARIZED))

register_sweep(_resnet_sweep(
    "dib_cifar_unregularized",
    "Unregularized ResNet-18 on CIFAR-10: 330 epochs, no augmentation, no weight decay (paper Table II, "
    "non-regularized), same betas and attacks as dib_cifar.",
    "cifar10", 330, UNREGULARIZED))

register_sweep(_resnet_sweep(
    "dib_mnist",
    "ResNet-18 (cifar stem, one input channel) on MNIST, 30 epochs with the paper's optimiser, no augmentation; "
    "same betas and attacks as dib_cifar at MNIST's budgets: FGSM, PGD-7/20 and APGD at L-inf 0.1, 0.2, 0.3.",
    "mnist", 30, {**UNREGULARIZED, "weight_decay": 1e-4, **MNIST_BUDGETS}))

register_sweep(
    SweepSpec(
        name="dib_digits",
        description="A small conv encoder on scikit-learn's 8x8 digits, beta in {0, 0.5, 1, 2, 4, 8, 32}, "
        "30 epochs, factorized entropy model; FGSM, PGD-7/20 and APGD-CE/DLR at eps 0.1 (pixels in [0, 1]) and CW-L2 on the 450 test "
        "digits. Sized for two CPU cores.",
        paper=PAPER,
        objective="dib",
        dataset="digits",
        epochs=30,
        config={
            **PAPER_OPTIMISER,
            "weight_decay": 1e-4,
            "encoder": "small_conv",
            "feature_dim": 128,
            "entropy_model": "factorized",  # the hyperprior collapsed at beta >= 8 on digits
            "warmup_epochs": 3,
            "checkpoint_every": 10,
            "eval_subset": 450,
            # 8/255 barely moves a 17-level digit image; these are a tenth to a fifth of the pixel range.
            "fgsm_epsilons": "0.025,0.05,0.1,0.2",
            "pgd_epsilons": "0.1",
            "l2_epsilons": "0.25,0.5,1.0",
            "infoplane_every": 1,  # about 0.1 s a measurement on one core, against about 1 s an epoch
            "infoplane_subset": 450,
        },
        grid={"beta": BETAS},
        evaluations=EVALUATIONS,
        reports=(*REPORTS, "info_plane"),
        smoke={"epochs": 2, "warmup_epochs": 1, "eval_subset": 64, **SMOKE_ATTACKS},
        smoke_grid={"beta": (0.0, 8.0)},
    )
)
