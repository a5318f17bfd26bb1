"""Sweeps of the two self-supervised objectives: ``simclr_dib`` and ``hybrid`` (temperature axes).

- ``simclr_dib``: Zhang et al., Entropy Constrained Compressive Representation Learning, section
  II.D and Table I: NT-Xent between two views + beta * the rate of each view's rounded
  representation; linear evaluation. beta = 0 is SimCLR.
- ``hybrid``: Sinha, Song and Ermon, Hybrid Mutual Information Lower-bound Estimators for
  Representation Learning: alpha * squared reconstruction error + (1 - alpha) * MoCo-v2 InfoNCE on
  the first half of the autoencoder's latent; no beta.
"""

from search_spaces import register_sweep
from search_spaces.dib import PAPER as DIB_PAPER  # the claims group under one Zhang et al.
from search_spaces.claims import Claim, register_claims
from search_spaces.spec import SweepSpec

ZHANG = "Zhang et al., Entropy Constrained Compressive Representation Learning (section II.D, Table I)"
SINHA = "Sinha, Song and Ermon, Hybrid Mutual Information Lower-bound Estimators for Representation Learning"

# --- simclr_dib ----------------------------------------------------------------------------

SIMCLR_BETAS = (0.0, 0.05, 0.1, 0.5)  # Table I
SIMCLR_REPORTS = ("linear_evaluation", "accuracy_vs_beta", "rate_vs_beta")

register_sweep(SweepSpec(
    name="simclr_dib_cifar",
    description="SimCLR with an entropy penalty on CIFAR-10: ResNet-18 (cifar stem), hyperprior, projection to 128, "
    "batch 256, Adam 3e-4 for 200 epochs then 3e-5 for 200; beta in {0, 0.05, 0.1, 0.5} x temperature in "
    "{0.07, 0.2, 0.5}; linear evaluation on h. Paper Table I (temperature 0.07), test accuracy: SimCLR 71.04, "
    "beta 0.05 / 0.1 / 0.5: 71.06 / 71.31 / 70.66.",
    paper=ZHANG,
    objective="simclr_dib",
    dataset="cifar10",
    epochs=400,
    config={"batch_size": 256, "lr": 3e-4, "lr_decay": 0.1, "lr_decay_every": 200, "checkpoint_every": 10,
            "probe_every": 50},
    grid={"beta": SIMCLR_BETAS, "temperature": (0.07, 0.2, 0.5)},
    reports=SIMCLR_REPORTS,
    cpus_per_trial=4,
    gpus_per_trial=1,
    smoke={"epochs": 1, "dataset": "digits", "encoder": "small_conv", "feature_dim": 32, "entropy_model": "factorized",
           "train_subset": 256, "test_subset": 128, "batch_size": 64, "crop_scale_min": 0.5},
    smoke_grid={"beta": (0.0, 0.5), "temperature": (0.07,)},
))

register_sweep(SweepSpec(
    name="simclr_dib_digits",
    description="SimCLR with an entropy penalty on the 8x8 digits: small conv encoder (64-d h), factorized entropy "
    "model, crops of at least half the image, batch 128, Adam 3e-3, 30 epochs; beta in {0, 0.05, 0.1, 0.5} x "
    "temperature in {0.1, 0.5}; linear evaluation on h every 5 epochs. Sized for two CPU cores.",
    paper=ZHANG,
    objective="simclr_dib",
    dataset="digits",
    epochs=30,
    config={"batch_size": 128, "lr": 3e-3, "encoder": "small_conv", "feature_dim": 64, "entropy_model": "factorized",
            "crop_scale_min": 0.5, "probe_every": 5, "checkpoint_every": 10},
    grid={"beta": SIMCLR_BETAS, "temperature": (0.1, 0.5)},
    reports=SIMCLR_REPORTS,
    smoke={"epochs": 2, "probe_every": 1},
    smoke_grid={"beta": (0.0, 0.5), "temperature": (0.5,)},
))

# --- hybrid --------------------------------------------------------------------------------

HYBRID_REPORTS = ("hybrid_tradeoff", "interpolation")

register_sweep(SweepSpec(
    name="hybrid_cifar",
    description="The hybrid autoencoder + MoCo-v2 bound on CIFAR-10: 16x16x6 latent, MoCo-v2 on its first 3 "
    "channels (queue 65536, momentum 0.999, MLP head to 128), squared error on the whole latent; alpha x "
    "temperature grid, batch 256, Adam 1e-3 with cosine decay, 200 epochs. Reference, paper Table 1 (CIFAR-10): "
    "MSE 2.6, FID 34.6, linear accuracy 77.6 (MoCo-v2 alone: 78.3).",
    paper=SINHA,
    objective="hybrid",
    dataset="cifar10",
    epochs=200,
    # one pair of 5 images per interpolation: 3 x 5 x 3,072 = 46,080 rows (about 6 MB of JSON) per trial
    # fp32 and NCHW: on an H100 bf16 made this small conv autoencoder's step 0.67x as fast, and
    # channels_last on top 0.79x (python -m benchmarks train_step, docs/benchmarks.md)
    config={"batch_size": 256, "lr": 1e-3, "lr_schedule": "cosine", "checkpoint_every": 10, "probe_every": 25,
            "interpolation_pairs": 1, "interpolation_steps": 5, "precision": "fp32", "channels_last": "off"},
    grid={"alpha": (0.01, 0.1, 0.5), "temperature": (0.07, 0.2)},
    reports=HYBRID_REPORTS,
    cpus_per_trial=4,
    gpus_per_trial=1,
    smoke={"epochs": 1, "dataset": "digits", "hidden_channels": 16, "head_hidden_dim": 64, "queue_size": 256,
           "momentum": 0.99, "train_subset": 256, "test_subset": 128, "batch_size": 64, "crop_scale_min": 0.5},
    smoke_grid={"alpha": (0.5,), "temperature": (0.07, 0.2)},
))

register_sweep(SweepSpec(
    name="hybrid_digits",
    description="The hybrid autoencoder + MoCo-v2 bound on the 8x8 digits: a 4x4x2 latent (32 values for 64 pixels, "
    "the paper's CIFAR ratio), MoCo-v2 on its first channel (queue 1024, momentum 0.99), alpha in {0.1, 0.5, 0.9} x "
    "temperature in {0.1, 0.5}, batch 128, Adam 1e-3, 30 epochs. Sized for two CPU cores. Reference, paper Table 1 "
    "(CIFAR-10): MSE 2.6, linear accuracy 77.6.",
    paper=SINHA,
    objective="hybrid",
    dataset="digits",
    epochs=30,
    config={"batch_size": 128, "lr": 1e-3, "latent_channels": 2, "hidden_channels": 32, "head_hidden_dim": 256,
            "queue_size": 1024, "momentum": 0.99, "crop_scale_min": 0.5, "probe_every": 5, "checkpoint_every": 10,
            "interpolation_pairs": 4, "interpolation_steps": 8},
    grid={"alpha": (0.1, 0.5, 0.9), "temperature": (0.1, 0.5)},
    reports=HYBRID_REPORTS,
    smoke={"epochs": 2, "probe_every": 1, "interpolation_pairs": 2},
    smoke_grid={"alpha": (0.5,), "temperature": (0.1, 0.5)},
))

# ---- the paper's claims that these sweeps can check (kinds and tests: search_spaces/claims.py) ---------------

register_claims(
    Claim(id="simclr_dib_cifar.simclr_linear", sweep="simclr_dib_cifar", paper=DIB_PAPER, source="Table I",
          claim="SimCLR (beta = 0, temperature 0.07) reaches 71.04% linear-evaluation test accuracy.",
          kind="value", metric="test/acc", where={"beta": 0.0, "temperature": 0.07}, value=0.7104, tolerance=0.02,
          expected="71.04%"),
    Claim(id="simclr_dib_cifar.compressive_linear", sweep="simclr_dib_cifar", paper=DIB_PAPER, source="Table I",
          claim="The compressive SimCLR at beta = 0.1 (temperature 0.07) reaches 71.31% linear-evaluation accuracy.",
          kind="value", metric="test/acc", where={"beta": 0.1, "temperature": 0.07}, value=0.7131, tolerance=0.02,
          expected="71.31%"),
    *(Claim(id=f"{sweep}.compressive_above_simclr", sweep=sweep, paper=DIB_PAPER, source="Section IV.B; Table I",
            claim="Compressive self-supervised representations generalize better than vanilla SimCLR.",
            kind="ordering", metric="test/acc", where={"temperature": temperature}, a={"beta": 0.1},
            b={"beta": 0.0}, direction="above", expected="beta = 0.1 above SimCLR (paper: 71.31% vs 71.04%)")
      for sweep, temperature in (("simclr_dib_cifar", 0.07), ("simclr_dib_digits", 0.1))),
)


register_claims(
    Claim(id="hybrid_cifar.linear_accuracy", sweep="hybrid_cifar", paper=SINHA, source="Table 1 (CIFAR-10)",
          claim="The hybrid representation reaches 77.6% linear accuracy on CIFAR-10 (MoCo-v2 alone: 78.3%).",
          kind="value", metric="test/acc", best="max", value=0.776, tolerance=0.02,
          expected="77.6% (the paper's alpha and temperature are not stated: best of the grid)"),
    *(Claim(id=f"{sweep}.mse_falls_with_alpha", sweep=sweep, paper=SINHA, source="Section 1; Table 1",
            claim="The autoencoding bound keeps what the contrastive bound discards: more weight alpha on it lowers "
                  "the reconstruction error.",
            kind="trend", metric="test/mse", axis="alpha", direction="decreasing",
            expected="decreasing in alpha (temperatures pooled)")
      for sweep in ("hybrid_digits", "hybrid_cifar")),
    *(Claim(id=f"{sweep}.accuracy_falls_with_alpha", sweep=sweep, paper=SINHA, source="Section 1; Table 1",
            claim="Autoencoding representations classify worse than contrastive ones: linear accuracy falls as "
                  "alpha grows.",
            kind="trend", metric="test/acc", axis="alpha", direction="decreasing",
            expected="decreasing in alpha (temperatures pooled)")
      for sweep in ("hybrid_digits", "hybrid_cifar")),
)
