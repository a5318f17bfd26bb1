"""Sweeps of the deep variational information bottleneck (objective ``vib``).

Alemi, Fischer, Dillon, Murphy, "Deep Variational Information Bottleneck", ICLR 2017
(slides: ../shared/papers/alemi-deep-variational-information-bottleneck-slides.txt).
Loss: CE(q(y|z), y) + beta * KL(p(z|x) || N(0, I)), z ~ N(mu(x), softplus(rho(x) - 5)^2).
"""

from search_spaces import register_sweep
from search_spaces.spec import SweepSpec

PAPER = "Alemi et al. 2017, Deep Variational Information Bottleneck"

# The paper's beta grid: 10^-9 ... 10^0, one point per decade.
BETAS = tuple(10.0**e for e in range(-9, 1))

register_sweep(
    SweepSpec(
        name="vib_mnist",
        description="VIB on permutation-invariant MNIST, the paper's protocol: K in {256, 2}, "
        "beta 1e-9..1, 200 epochs (paper: 1.13% test error at beta 1e-3, K 256).",
        paper=PAPER,
        objective="vib",
        dataset="mnist",
        epochs=200,
        config={
            "batch_size": 100,
            "lr": 1e-4,
            "adam_beta1": 0.5,
            "lr_decay": 0.97,
            "lr_decay_every": 2,
            "ema_decay": 0.999,
            "checkpoint_every": 5,
            "eval_subset": 1000,
            "fgsm_epsilons": "0.1,0.2,0.35,0.5",
            "eot_samples": 12,
        },
        grid={"beta": BETAS, "latent_dim": (256, 2)},
        ranges={"beta": ("loguniform", 1e-9, 1.0)},
        # The paper's adversaries: FGS at eps 0.1 ... 0.5 (its Fig. 5) and Carlini-Wagner L2 (Fig. 6),
        # gradients averaged over 12 posterior samples (EOT), on 1,000 test images.
        evaluations=("fgsm", "cw_l2"),
        reports=("accuracy_vs_beta", "rate_vs_beta", "robustness"),
        cpus_per_trial=2,
        gpus_per_trial=0.25,
        smoke={"epochs": 1, "dataset": "digits", "hidden_dim": 64, "eval_samples": 2, "eval_subset": 64,
               "eot_samples": 2, "cw_steps": 10},
        smoke_grid={"beta": (1e-3, 1.0), "latent_dim": (2,)},
    )
)

register_sweep(
    SweepSpec(
        name="vib_digits",
        description="VIB on scikit-learn's 8x8 digits: the vib_mnist grid (K in {256, 2}, beta 1e-9..1) "
        "sized for two CPU cores (a 256-unit encoder, 60 epochs, lr 1e-3).",
        paper=PAPER,
        objective="vib",
        dataset="digits",
        epochs=60,
        config={
            "batch_size": 100,
            "lr": 1e-3,
            "adam_beta1": 0.5,
            "hidden_dim": 256,
            "checkpoint_every": 10,
            "eval_subset": 450,
            "fgsm_epsilons": "0.1,0.2,0.35,0.5",
            "eot_samples": 4,
            # every 3rd epoch: 0.01-0.15 s a measurement on one core, against about 0.2 s an epoch
            "infoplane_every": 3,
            "infoplane_subset": 450,
        },
        grid={"beta": BETAS, "latent_dim": (256, 2)},
        ranges={"beta": ("loguniform", 1e-9, 1.0)},
        evaluations=("fgsm",),
        reports=("accuracy_vs_beta", "rate_vs_beta", "robustness", "info_plane"),
        cpus_per_trial=1,
        smoke={"epochs": 2, "hidden_dim": 64, "eval_samples": 2, "eval_subset": 64, "eot_samples": 2},
        smoke_grid={"beta": (1e-3, 1.0), "latent_dim": (2,)},
    )
)
