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
from search_spaces.spec import SweepSpec, register_objective_defaults

PAPER = "Tschannen et al. 2020, On Mutual Information Maximization for Representation Learning"

register_objective_defaults(
    "infomax",
    {
        "estimator": "infonce",  # the MI lower bound maximised: infonce or nwj
        "critic": "bilinear",  # bilinear x^T W y, separable phi1(x)^T phi2(y), concat phi([x, y])
        "encoder": "realnvp",  # realnvp (additive couplings, invertible) or mlp (residual blocks)
        "encoder_depth": 30,  # coupling layers / residual blocks (paper: 30)
        "encoder_hidden": 512,  # width of the two hidden layers of each (paper: 512)
        "init_scale": 1e-4,  # std of each block's last layer at init: near-identity encoders (notebook: 1e-4)
        "separable_hidden": 100,  # hidden width of the separable critic's two MLPs (notebook: 100)
        "separable_embed": 100,  # their output (embedding) size (notebook: 100)
        "concat_hidden": 200,  # hidden width of the concat critic's MLP (notebook: 200)
        "mi_batch_size": 128,  # pairs per test MI estimate: InfoNCE is capped at log of this
        "condition_every": 1,  # epochs between condition-number measurements (also after epoch 1 and the last)
        "condition_batch": 128,  # the fixed test examples whose Jacobians are measured
        "probe_train_subset": 0,  # training examples the linear probe is fitted on, every epoch (0 = all)
        "adversarial": False,  # the paper's adversarial encoder: fool a linear classifier, keep I_EST high
        "adversarial_weight": 1.0,  # weight of the encoder's uniform-label cross-entropy
    },
    positive=("encoder_depth", "encoder_hidden", "separable_hidden", "separable_embed", "concat_hidden",
              "mi_batch_size", "condition_every", "condition_batch"),
    nonnegative=("init_scale", "probe_train_subset", "adversarial_weight"),
    choices={"estimator": ("infonce", "nwj"), "critic": ("bilinear", "separable", "concat"),
             "encoder": ("realnvp", "mlp")},
)

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
