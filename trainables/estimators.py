"""Entropy and mutual-information estimators as pure functions of tensors.

Every estimator returns nats unless its name says bits; :func:`nats_to_bits` converts, since
metrics are reported in bits (docs/results.md, section "Metric names, by objective"). Each
function is tested against a closed form or an independent reference in
``tests/test_estimators.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainables.fast_path import without_autocast

NATS_PER_BIT = math.log(2)
"""ln 2: one bit is ln 2 nats."""


def nats_to_bits(x: Tensor | float) -> Tensor | float:
    """Convert an information quantity from nats to bits: ``x / ln 2``."""
    return x / NATS_PER_BIT


def gaussian_entropy(std: Tensor) -> Tensor:
    """h(N(mean, diag(std^2))) in nats, one value per example: sum_k log std_k + K/2 log(2 pi e), in fp32.

    ``std`` is ``(B, K)``; it is clamped at fp32's smallest normal number so that a collapsed std gives a large
    negative entropy, not -inf. The information plane's h(Z | X = x) for the Gaussian encoders (vib, ceb).
    """
    log_std = torch.log(std.float().clamp_min(torch.finfo(torch.float32).tiny))
    return log_std.sum(dim=-1) + 0.5 * std.shape[-1] * math.log(2 * math.pi * math.e)


def gaussian_kl_standard_normal(mean: Tensor, std: Tensor) -> Tensor:
    """KL( N(mean, diag(std^2)) || N(0, I) ) in nats, one value per example.

    The rate term of the Deep Variational Information Bottleneck (Alemi, Fischer, Dillon and
    Murphy, 2017, eq. 17): with encoder p(z|x) = N(z | mean(x), diag(std(x)^2)) and prior
    r(z) = N(0, I), the batch mean of this KL is a variational upper bound on I(Z; X).
    For K latent dimensions the closed form is

        KL = 1/2 * sum_{k=1..K} ( std_k^2 + mean_k^2 - 1 - 2 log std_k ).

    Args:
        mean: ``(..., K)`` posterior means.
        std: ``(..., K)`` posterior standard deviations, assumed > 0 (e.g. a softplus output).
            ``log std`` is taken of ``std`` clamped below at the dtype's smallest normal number, so
            a std that underflowed to 0 gives a large finite KL rather than ``inf``.
            Half-precision inputs (e.g. under bf16 autocast) are upcast to float32 first: bf16
            keeps only 8 significant bits, and the sum over K dimensions would accumulate their
            rounding error.

    Returns:
        ``(...)`` tensor (float32 or float64): the KL summed over the last (latent) dimension.

    Raises:
        ValueError: ``mean`` and ``std`` differ in shape.
    """
    if mean.shape != std.shape:
        raise ValueError(f"mean and std must have the same shape, got {tuple(mean.shape)} and {tuple(std.shape)}")
    dtype = torch.promote_types(mean.dtype, torch.float32)
    mean, std = mean.to(dtype), std.to(dtype)
    log_std = torch.log(std.clamp_min(torch.finfo(std.dtype).tiny))
    return 0.5 * (std.square() + mean.square() - 1.0 - 2.0 * log_std).sum(dim=-1)


def view_pairs(n: int, device: torch.device) -> Tensor:
    """Index of each of 2N stacked views' other view: ``i <-> i + N``, built on ``device`` (no
    host-to-device copy, so no sync on CUDA)."""
    return (torch.arange(2 * n, device=device) + n) % (2 * n)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR, in nats.

    Chen, Kornblith, Norouzi and Hinton, "A simple framework for contrastive learning of visual
    representations", 2020, eq. 1; the contrastive term of Zhang et al.'s compressive SimCLR
    (section II.D). Row i of ``z1`` and row i of ``z2`` are the projections of two augmented
    views of image i; the other 2N - 2 projections in the batch are its negatives. With
    u_1..u_2N = (z1, z2) normalised to unit length and s_ab = u_a . u_b / temperature,

        loss = 1/(2N) sum_{a=1..2N} -log( exp(s_{a,p(a)}) / sum_{b != a} exp(s_ab) ),

    where p(a) is the other view of a's image. The sum runs over both views as anchors, so the
    loss is symmetric in ``z1`` and ``z2``. ``log(2N - 1) - loss`` is the InfoNCE lower bound on
    the mutual information between the views that the loss maximises (van den Oord et al. 2018).

    Args:
        z1, z2: ``(N, D)`` projections of the first and second view (any scale; normalised
            here), N >= 2. Computed in float32 at least.
        temperature: tau > 0 (SimCLR and Zhang et al.: 0.07 to 0.5).

    Returns:
        0-d tensor, the mean over the 2N anchors.

    Raises:
        ValueError: shapes differ, are not ``(N, D)`` with N >= 2, or temperature <= 0.

    Example: for ``z1 = z2`` with orthonormal rows (``torch.eye(N, D)``) every positive scores
    1/tau and every negative 0, so the loss is ``log(1 + (2N - 2) exp(-1/tau))``.
    """
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] < 2:
        raise ValueError(f"nt_xent needs two (N, D) batches of the same shape with N >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"nt_xent: temperature must be > 0, got {temperature!r}")
    n = z1.shape[0]
    dtype = torch.promote_types(z1.dtype, torch.float32)
    u = torch.nn.functional.normalize(torch.cat([z1, z2]).to(dtype), dim=1)
    similarity = u @ u.T / temperature
    similarity = similarity.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    return torch.nn.functional.cross_entropy(similarity, view_pairs(n, u.device))


def moco_info_nce(query: Tensor, key: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """The InfoNCE loss of MoCo with a queue of negatives, in nats.

    He et al., "Momentum contrast for unsupervised visual representation learning", 2020, eq. 1,
    as MoCo-v2 (Chen, Fan, Girshick and He, 2020) trains it; the contrastive half of the hybrid
    bound of Sinha, Song and Ermon. With q, k normalised to unit length and the queue holding K
    normalised keys of earlier batches (the negatives),

        loss = 1/N sum_i -log( exp(q_i . k_i / tau) / (exp(q_i . k_i / tau) + sum_j exp(q_i . n_j / tau)) ).

    ``log(K + 1) - loss`` is the InfoNCE lower bound on the mutual information it maximises.
    No gradient flows into ``key`` or ``queue`` (the key encoder is a momentum copy).

    Args:
        query: ``(N, D)`` query projections (normalised here).
        key: ``(N, D)`` key projections of the other view, from the momentum encoder.
        queue: ``(K, D)`` negatives, already normalised.
        temperature: tau > 0 (MoCo-v2: 0.2; D2C and Sinha et al.: 0.07).

    Returns:
        0-d tensor, the mean over the N queries.

    Raises:
        ValueError: mismatched shapes, or temperature <= 0.
    """
    if query.shape != key.shape or query.dim() != 2 or queue.dim() != 2 or queue.shape[1] != query.shape[1]:
        raise ValueError(f"moco_info_nce needs query and key (N, D) and queue (K, D), got {tuple(query.shape)}, "
                         f"{tuple(key.shape)} and {tuple(queue.shape)}")
    if not temperature > 0:
        raise ValueError(f"moco_info_nce: temperature must be > 0, got {temperature!r}")
    dtype = torch.promote_types(query.dtype, torch.float32)
    q = torch.nn.functional.normalize(query.to(dtype), dim=1)
    k = torch.nn.functional.normalize(key.detach().to(dtype), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.detach().to(dtype).T
    logits = torch.cat([positive, negative], dim=1) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def _check_scores(scores: Tensor, name: str) -> Tensor:
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(f"{name} needs a (B, B) critic score matrix with B >= 2, got shape {tuple(scores.shape)}")
    return scores.to(torch.promote_types(scores.dtype, torch.float32))


def infonce(scores: Tensor) -> Tensor:
    """The InfoNCE lower bound on I(X; Y) in nats (van den Oord et al. 2018; Poole et al. 2019).

    As in Tschannen et al., "On mutual information maximization for representation learning"
    (ICLR 2020; ../shared/papers/tschannen-*), for a batch of B pairs (x_i, y_i) drawn from
    p(x, y) and a critic f with ``scores[i, j] = f(x_i, y_j)``,

        I_NCE = 1/B sum_i log( exp(f(x_i, y_i)) / (1/B sum_j exp(f(x_i, y_j))) )
              = log B + mean_i ( scores[i, i] - logsumexp_j scores[i, j] ).

    **I_NCE can never exceed log B**: ``scores[i, i] <= logsumexp_j scores[i, j]`` for every
    row, so each term of the mean is <= 0, whatever the critic. An estimate near log B says the
    batch is too small to measure more, not that the MI is log B. It is tight (for large B) when
    f(x, y) = log p(y|x) + c(x).

    Args:
        scores: ``(B, B)`` critic scores, positive pairs on the diagonal, B >= 2. Computed in
            float32 at least.

    Returns:
        0-d tensor in nats.

    Raises:
        ValueError: ``scores`` is not a square matrix with B >= 2.

    Example: ``scores = d * torch.eye(B)`` gives ``log B - log(1 + (B - 1) exp(-d))``.
    """
    scores = _check_scores(scores, "infonce")
    return math.log(scores.shape[0]) + (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean()


def nwj(scores: Tensor) -> Tensor:
    """The NWJ lower bound on I(X; Y) in nats (Nguyen, Wainwright and Jordan 2010; f-GAN KL).

    Tschannen et al. (ICLR 2020) write it, for a batch of B pairs and ``scores[i, j] = f(x_i, y_j)``,

        I_NWJ = 1/B sum_i f(x_i, y_i) - e^{-1} * mean over pairs (i, j) of exp(f(x_i, y_j)).

    The second mean runs over the B (B - 1) off-diagonal pairs only, as in the paper's official
    notebook (../shared/NOTES.md): those are the samples of p(x) p(y); the slides average over
    all B^2 pairs, which mixes B samples of p(x, y) into the expectation under p(x) p(y). Unlike
    InfoNCE it is not capped at log B, but its variance grows like exp(I). It is tight when
    f(x, y) = 1 + log p(y|x) / p(y). The exponential mean is taken through ``logsumexp``, so
    large scores overflow only when the bound itself is -inf.

    Args:
        scores: ``(B, B)`` critic scores, positive pairs on the diagonal, B >= 2. Computed in
            float32 at least.

    Returns:
        0-d tensor in nats.

    Raises:
        ValueError: ``scores`` is not a square matrix with B >= 2.

    Example: ``a`` on the diagonal and ``b`` elsewhere give ``a - exp(b - 1)``.
    """
    scores = _check_scores(scores, "nwj")
    b = scores.shape[0]
    # the off-diagonal entries in row-major order, as masked_select with ~eye would give them, but
    # by a static reshape: masked_select's data-dependent size breaks torch.compile's graph (and
    # syncs the host on CUDA). Dropping the first element leaves rows of B + 1 that each end
    # with a diagonal entry.
    off_diagonal = scores.reshape(-1)[1:].reshape(b - 1, b + 1)[:, :-1].reshape(-1)
    log_mean_exp = torch.logsumexp(off_diagonal - 1.0, dim=0) - math.log(b * (b - 1))
    return scores.diagonal().mean() - log_mean_exp.exp()


# ---- k-nearest-neighbour entropy (Kozachenko-Leonenko), the estimator of the knn_ib objective ----

ZERO_ENTROPY_STD = 1.0 / math.sqrt(2.0 * math.pi * math.e)
"""Standard deviation of zero-entropy noise: N(0, s^2) has entropy 1/2 log(2 pi e s^2) = 0 nats."""



def zero_entropy_noise(shape, *, device=None, dtype=None, generator: torch.Generator | None = None) -> Tensor:
    """Samples of N(0, I / (2 pi e)), whose differential entropy is exactly 0 nats.

    Kirsch, Lyle and Gal (2020), section 3.1: added to a deterministic latent, Z = f(X) + eps, it
    makes H[Z | X] = H[eps] = 0, so I[X; Z] = H[Z] and H[Z] >= 0. Per dimension the entropy is
    1/2 log(2 pi e s^2) with s = :data:`ZERO_ENTROPY_STD`.
    """
    return torch.randn(shape, device=device, dtype=dtype, generator=generator) * ZERO_ENTROPY_STD


def knn_entropy(z: Tensor, k: int = 1) -> Tensor:
    """Kozachenko-Leonenko k-NN estimate of the differential entropy of the samples ``z``, in nats.

    Kraskov, Stoegbauer and Grassberger (2004), eq. (20), with the Euclidean norm, in the
    squared-distance form of Kirsch, Lyle and Gal (2020), eq. (13):

        H = psi(N) - psi(k) + log V_d + d / (2N) * sum_i log rho_i^2,

    where rho_i is the distance from z_i to its k-th nearest neighbour among the other N - 1
    points (a point is never its own neighbour) and V_d = pi^(d/2) / Gamma(d/2 + 1) is the volume
    of the d-dimensional unit ball. (Kraskov writes c_d eps^d with eps = 2 rho and
    c_d = V_d / 2^d, which is the same. The paper's eq. (11) prints "- psi(N)"; the sign is a
    typo: Kraskov's eq. (20) has + psi(N), and only + psi(N) matches the closed forms of
    ``tests/test_knn_entropy.py``.) The gradient is the paper's eq. (14),
    d / (2N) sum_i grad log rho_i^2: the neighbour of each point is chosen without gradient and
    rho_i^2 is recomputed as the squared difference of the two points, which stays finite and
    exact where ``sqrt`` would not.

    Numerics (../shared/NOTES.md, Numerics): the batch is centred and upcast to float32 (float64
    stays float64), outside autocast, and the distances are taken as differences
    (``torch.cdist`` with ``donot_use_mm_for_euclid_dist``), never as |a|^2 + |b|^2 - 2 a.b, so
    neither a batch far from the origin nor TF32 matmuls on CUDA lose the small distances;
    ``d * log rho`` is summed, never ``log(rho ** d)``, so d = 512 does not overflow. A distance
    is floored at the rounding resolution of the coordinates, ``eps * max |z|`` (``eps`` of the
    dtype; never below the smallest normal number), below which two points cannot be told apart:
    duplicate points give a finite estimate and a zero gradient between the two copies instead
    of ``log 0 = -inf``, while any resolvable distance is left exact (an absolute floor would
    bias a batch of small scale).

    Args:
        z: ``(N, d)`` samples, N > k.
        k: which neighbour (k >= 1); k = 1 is Kozachenko and Leonenko's original estimator.

    Returns:
        0-d tensor (float32, or float64 for float64 input), differentiable in ``z``.

    Raises:
        ValueError: ``z`` is not 2-d, ``k`` is not an int >= 1, or N <= k.
    """
    n, d = _check_knn_samples("knn_entropy", z, k)
    squared = _knn_squared_distances(z, k, same_group=None)
    return _digamma(n) + _knn_offset(k, d) + d / (2 * n) * torch.log(squared).sum()


def class_conditional_knn_entropy(z: Tensor, y: Tensor, k: int = 1, *, num_classes: int | None = None) -> Tensor:
    """H[Z | Y] = sum_c p(c) H[Z | Y = c], each term a :func:`knn_entropy` within class c, in nats.

    Kirsch, Lyle and Gal (2020), eq. (10): for categorical labels H[Z | Y] is the average of the
    per-class entropies, weighted by p(c), here the class's share of the samples (1/C for the
    class-balanced batches that ``knn_ib`` trains on: the paper's 1/C sum). A class with k or
    fewer samples cannot be estimated and is left out, the weights renormalised over the rest;
    the result is NaN when no class has more than k samples. One distance matrix serves every
    class (pairs from different classes are masked), and nothing is read back to the host when
    ``num_classes`` is given.

    Args:
        z: ``(N, d)`` samples.
        y: ``(N,)`` int64 labels in ``[0, num_classes)``.
        k: as in :func:`knn_entropy`.
        num_classes: the number of labels (default: ``y.max() + 1``, one host sync).

    Returns:
        0-d tensor, differentiable in ``z``.

    Raises:
        ValueError: ``z`` is not ``(N, d)`` with ``y`` of shape ``(N,)``, or ``k`` is not an int >= 1.
    """
    if z.dim() != 2 or y.shape != z.shape[:1]:
        raise ValueError(f"class_conditional_knn_entropy needs z (N, d) and y (N,), got shapes {tuple(z.shape)} "
                         f"and {tuple(y.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"class_conditional_knn_entropy: k must be an int >= 1, got {k!r}")
    n, d = z.shape
    classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    squared = _knn_squared_distances(z, k, same_group=y)
    counts = torch.zeros(classes, dtype=squared.dtype, device=z.device).scatter_add_(0, y, torch.ones_like(squared))
    usable = counts > k
    usable_points = usable[y]
    total = (counts * usable).sum()
    # per class: psi(n_c) - psi(k) + log V_d + d / (2 n_c) sum_{i in c} log rho_i^2, weighted by n_c / total
    digamma_counts = torch.special.digamma(counts.clamp_min(1.0))
    constant = (counts * usable * digamma_counts).sum() / total + _knn_offset(k, d)
    log_squared = torch.where(usable_points, torch.log(squared), torch.zeros_like(squared))
    return constant + d / 2 * log_squared.sum() / total


# A Python number of Python numbers (batch size, k): under torch.compile it is evaluated while
# tracing and baked into the graph, instead of its .item() breaking the training forward's graph.
# Sound because the harness compiles with static shapes (dynamic=False): each batch size gets its
# own graph, so the baked value is never reused for another.
@torch.compiler.assume_constant_result
def _digamma(x: float) -> float:
    return torch.special.digamma(torch.tensor(float(x), dtype=torch.float64)).item()


def _knn_offset(k: int, d: int) -> float:
    """-psi(k) + log V_d, with V_d = pi^(d/2) / Gamma(d/2 + 1) the volume of the d-dimensional unit ball."""
    return -_digamma(k) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def _knn_squared_distances(z: Tensor, k: int, same_group: Tensor | None) -> Tensor:
    """Squared distance of every point to its k-th nearest neighbour (within its group), (N,)."""
    dtype = torch.promote_types(z.dtype, torch.float32)
    with without_autocast(z.device):
        z = z.to(dtype)
        with torch.no_grad():
            centred = z - z.mean(dim=0, keepdim=True)
            distances = torch.cdist(centred, centred, compute_mode="donot_use_mm_for_euclid_dist")
            distances.fill_diagonal_(math.inf)
            if same_group is not None:
                distances.masked_fill_(same_group[:, None] != same_group[None, :], math.inf)
            neighbour = distances.topk(k, dim=1, largest=False).indices[:, k - 1]
        # exact squared differences, differentiable (eq. 14); translation-invariant as they are
        squared = (z - z[neighbour]).square().sum(dim=1)
        info = torch.finfo(dtype)
        with torch.no_grad():
            floor = (info.eps * z.abs().max()).square().clamp_min(info.tiny)
        return torch.maximum(squared, floor)


def _check_knn_samples(name: str, z: Tensor, k: int) -> tuple[int, int]:
    """``(N, d)`` of samples ``z`` for a k-NN estimate; ValueError naming ``name`` when they cannot give one."""
    if z.dim() != 2:
        raise ValueError(f"{name} needs samples of shape (N, d), got shape {tuple(z.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name}: k must be an int >= 1, got {k!r}")
    n, d = z.shape
    if n <= k:
        raise ValueError(f"{name}: {n} samples cannot give a k = {k} nearest neighbour; need N > k")
    return n, d
