"""Sweeps of InfoMax with invertible encoders (objective ``infomax``).

Tschannen, Djolonga, Rubenstein, Gelly, Lucic, "On Mutual Information Maximization for
Representation Learning", ICLR 2020
(slides: ../shared/papers/tschannen-mi-maximization-representation-learning-slides.txt).
Loss: -I_EST(g1(x_top); g2(x_bottom)), I_EST in {InfoNCE, NWJ}, critic in {bilinear, separable,
concat}, encoders RealNVP (invertible) or a skip-connection MLP. The report that carries the
paper's point is ``conditioning``: MI estimate, linear-probe accuracy and the Jacobian's log
condition number against training steps.
"""

from search_spaces import register_sweep
from search_spaces.spec import SweepSpec

PAPER = "Tschannen et al. 2020, On Mutual Information Maximization for Representation Learning"

GRID = {"estimator": ("infonce", "nwj"), "critic": ("bilinear", "separable", "concat"), "encoder": ("realnvp", "mlp")}
SMOKE = {"epochs": 2, "encoder_depth": 2, "encoder_hidden": 16, "separable_hidden": 16, "separable_embed": 8,
         "concat_hidden": 16, "condition_batch": 16}
SMOKE_GRID = {"estimator": ("infonce", "nwj"), "critic": ("separable",), "encoder": ("realnvp", "mlp")}

register_sweep(
    SweepSpec(
        name="infomax_mnist",
        description="InfoMax between the top and bottom halves of MNIST (MNIST halves, 392 pixels each): "
        "estimator {InfoNCE, NWJ} x critic {bilinear, separable, concat} x encoder {RealNVP, skip MLP}, "
        "the paper's encoders (30 couplings, 512-512), 3 seeds; MI estimate, linear-probe accuracy and "
        "log condition number of g1's Jacobian along training.",
        paper=PAPER,
        objective="infomax",
        dataset="mnist",
        epochs=20,
        config={
            "batch_size": 128,
            "lr": 1e-4,
            "checkpoint_every": 5,
            "probe_train_subset": 10000,
            "condition_batch": 128,
        },
        grid=GRID,
        metric="probe/test_acc",
        mode="max",
        seeds=(0, 1, 2),
        reports=("conditioning",),
        cpus_per_trial=2,
        gpus_per_trial=0.25,
        smoke={**SMOKE, "dataset": "digits"},
        smoke_grid=SMOKE_GRID,
    )
)

register_sweep(
    SweepSpec(
        name="infomax_digits",
        description="InfoMax between the top and bottom halves of the 8x8 digits (digits halves, 32 pixels "
        "each): the infomax_mnist grid (estimator x critic x encoder) sized for two CPU cores "
        "(8 couplings / blocks of width 128, 30 epochs, 2 seeds).",
        paper=PAPER,
        objective="infomax",
        dataset="digits",
        epochs=30,
        config={
            "batch_size": 128,
            "lr": 1e-3,
            "encoder_depth": 8,
            "encoder_hidden": 128,
            "checkpoint_every": 10,
            "condition_batch": 128,
        },
        grid=GRID,
        metric="probe/test_acc",
        mode="max",
        seeds=(0, 1),
        reports=("conditioning",),
        cpus_per_trial=1,
        smoke=SMOKE,
        smoke_grid=SMOKE_GRID,
    )
)
