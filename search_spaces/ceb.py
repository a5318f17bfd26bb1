"""Sweeps of the Conditional Entropy Bottleneck (objective ``ceb``).

Fischer 2020, "The Conditional Entropy Bottleneck", Entropy 22(9):999; Fischer and Alemi 2020, "CEB Improves Model
Robustness", Entropy 22(10):1081. Loss: -log c(y|z) + beta * (log e(z|x) - log b(z|y)), z ~ e(z|x); the papers'
rho is -ln(beta).
"""

import math

import search_spaces.vib  # noqa: F401  (registers vib_digits, whose settings ceb_digits shares)
from search_spaces import SWEEPS, register_sweep
from search_spaces.claims import Claim, register_claims
from search_spaces.spec import SweepSpec

PAPER = "Fischer 2020, The Conditional Entropy Bottleneck; Fischer and Alemi 2020, CEB Improves Model Robustness"
REPORTS = ("accuracy_vs_beta", "rate_vs_beta", "robustness", "ceb_vs_vib")

# The robustness paper's CIFAR-10 grid: rho in {-1, -0.75, ..., 5} (25 models), beta = exp(-rho).
RHOS = tuple(-1 + 0.25 * i for i in range(25))
PAPER_BETAS = tuple(math.exp(-rho) for rho in RHOS)

# ceb_digits is vib_digits with the objective swapped: its settings are read from that spec, so the two stay matched.
# Its beta grid (1e-9 ... 1) spans about the same rates for both objectives (docs/extending.md).
VIB_DIGITS = SWEEPS["vib_digits"]

register_sweep(
    SweepSpec(
        name="ceb_digits",
        description="CEB on scikit-learn's 8x8 digits with vib_digits' encoder, optimiser, epochs, attacks and "
        "information plane (K in {256, 2}, a 256-unit Gaussian MLP, 60 epochs, FGSM) and betas (1e-9..1); its report "
        "compares CEB with a finished vib_digits run at matched rates. Sized for two CPU cores.",
        paper=PAPER,
        objective="ceb",
        dataset=VIB_DIGITS.dataset,
        epochs=VIB_DIGITS.epochs,
        config=dict(VIB_DIGITS.config),
        grid=dict(VIB_DIGITS.grid),
        ranges=dict(VIB_DIGITS.ranges),
        evaluations=VIB_DIGITS.evaluations,
        reports=(*REPORTS, "info_plane"),
        cpus_per_trial=VIB_DIGITS.cpus_per_trial,
        smoke=dict(VIB_DIGITS.smoke),
        smoke_grid=dict(VIB_DIGITS.smoke_grid),
    )
)

register_sweep(
    SweepSpec(
        name="ceb_cifar",
        description="CEB on CIFAR-10 after the robustness paper: its 25 models at rho = -1, -0.75, ..., 5 (beta = "
        "exp(-rho)), 1500 epochs, lr x 0.3 after 500 and 1000 (the paper also at 1250), PGD-20 at L-inf 8/255. "
        "The paper's Wide ResNet 28-10 without BatchNorm and AutoAugment are not in the project: a ResNet-18 "
        "(cifar stem, with BatchNorm) with a Gaussian head and crop+flip stand in.",
        paper=PAPER,
        objective="ceb",
        dataset="cifar10",
        epochs=1500,
        # Ours, where the paper's main text is silent: Adam at 1e-3, batch 128, EOT over 4 samples of z.
        config={
            "encoder": "resnet18",
            "stem": "cifar",
            "batch_size": 128,
            "lr": 1e-3,
            "lr_decay": 0.3,
            "lr_decay_every": 500,
            "augment": "crop_flip",
            "crop_padding": 4,
            "checkpoint_every": 10,
            "eval_subset": 1000,
            "pgd_epsilons": "0.03137",
            "pgd_steps": "7,20",
            "apgd_norms": "linf,l2",
            "eot_samples": 4,
        },
        grid={"beta": PAPER_BETAS},
        ranges={"beta": ("loguniform", PAPER_BETAS[-1], PAPER_BETAS[0])},
        evaluations=("fgsm", "pgd", "apgd_ce", "apgd_dlr", "cw_l2"),
        reports=REPORTS,
        cpus_per_trial=4,
        gpus_per_trial=1,
        smoke={"epochs": 1, "dataset": "digits", "train_subset": 256, "test_subset": 128, "eval_subset": 64,
               "crop_padding": 1, "eot_samples": 1, "apgd_steps": 10, "apgd_targets": 2, "cw_binary_steps": 2,
               "cw_steps": 10},
        smoke_grid={"beta": (PAPER_BETAS[0], PAPER_BETAS[-1])},
    )
)

# ---- the paper's claims that these sweeps can check (kinds and tests: search_spaces/claims.py) ---------------

# The CEB papers are not in ../shared/papers; the claim is this project's (issue 19): beta prices the residual
# information I(X;Z|Y), so the rate the loss prices falls as beta grows.
register_claims(*(
    Claim(id=f"ceb_digits.rate_falls_k{k}", sweep="ceb_digits", paper=PAPER,
          source="this project's claim (issue 19); the loss prices beta * I(X;Z|Y)",
          claim=f"The residual information falls as beta grows, K = {k}.",
          kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", where={"latent_dim": k},
          expected="decreasing in beta")
    for k in (256, 2)
))
