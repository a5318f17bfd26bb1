"""Images per second of one training epoch's input pipeline, with the same augmentation.

Baseline: the usual torchvision pipeline — a ``Dataset`` of uint8 HWC arrays, ``RandomCrop(32,
padding=4)``, ``RandomHorizontalFlip`` and ``ToTensor`` per image, batched by a ``DataLoader``.
Ours: the whole dataset as one float tensor on the device, batches as index slices of a
``randperm``, and :func:`trainables.data.crop_flip` on the whole batch. Both produce float
batches of (B, 3, 32, 32) in [0, 1]; no model runs, so the figure is the pipeline alone.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def torchvision_dataset(images: np.ndarray, labels: np.ndarray):
    """The usual torchvision pipeline over uint8 HWC images: ``RandomCrop(32, padding=4)``,
    ``RandomHorizontalFlip`` and ``ToTensor`` per image (the baseline of every benchmark here)."""
    from torch.utils.data import Dataset
    from torchvision import transforms

    augment = transforms.Compose([transforms.ToPILImage(), transforms.RandomCrop(32, padding=4),
                                  transforms.RandomHorizontalFlip(), transforms.ToTensor()])

    class Images(Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int):
            return augment(images[i]), int(labels[i])

    return Images()


def baseline_epoch(images: np.ndarray, labels: np.ndarray, batch_size: int, workers: int) -> int:
    from torch.utils.data import DataLoader

    seen = 0
    for x, _ in DataLoader(torchvision_dataset(images, labels), batch_size=batch_size, shuffle=True,
                           num_workers=workers):
        seen += len(x)
    return seen


def device_epoch(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> int:
    from trainables.data import batch_indices, crop_flip

    seen = 0
    for index in batch_indices(len(y), batch_size, generator=generator, device=x.device):
        batch = crop_flip(x[index], padding=4, generator=generator)
        seen += len(batch)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks data_pipeline")
    parser.add_argument("--images", type=int, default=10_000, help="CIFAR-shaped random images (default 10,000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from benchmarks.common import machine, summary

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.images)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(args.device)
    y = torch.from_numpy(labels).to(args.device)
    generator = torch.Generator(device=args.device).manual_seed(0)

    device_epoch(x, y, args.batch_size, generator)  # warm-up
    ours, base = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        n = device_epoch(x, y, args.batch_size, generator)
        ours.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        n = baseline_epoch(images, labels, args.batch_size, args.workers)
        base.append(n / (time.perf_counter() - start))
    ratio = sorted(o / b for o, b in zip(ours, base))[len(ours) // 2]
    print(f"machine: {machine()}; device {args.device}")
    print(f"DataLoader ({args.workers} workers, torchvision transforms): {summary(base)} images/s")
    print(f"device-resident + crop_flip:                  {summary(ours)} images/s")
    print(f"ratio (median of {args.repeats} paired repeats): {ratio:.1f}x")
    return 0
