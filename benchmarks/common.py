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


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (runnable processes; compare with the core count)."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def mean_and_range(values: list[float], unit: str = "", digits: int = 1) -> str:
    """mean (min to max) over repeats, e.g. ``11.9 s (11.2 to 12.8)``: "to", since a difference can be negative."""
    suffix = f" {unit}" if unit else ""
    return f"{statistics.mean(values):.{digits}f}{suffix} ({min(values):.{digits}f} to {max(values):.{digits}f})"
