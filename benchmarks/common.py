"""What every benchmark records beside its figures: the machine it ran on."""

from __future__ import annotations

import os
import platform
import statistics

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}"


def summary(values: list[float]) -> str:
    """median (min-max) over repeats."""
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"
