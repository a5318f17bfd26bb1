"""Figures of one panel per configuration, one line per beta: the layout of the evaluation figures.

``fgsm_curves.png``, ``cw_l2_curves.png``, ``spectra.png`` and ``info_plane.png`` share it: a grid
of at most three panels per row, one per configuration of the swept axes other than beta, one
colour per beta (:func:`orchestrator.reports.style.beta_colors`, the same in every figure of a
report) and the betas named in a legend below the panels, or on a colour bar when there are many.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# How draw_mean_band draws a line, and so how a legend entry for it is drawn.
MEAN_LINE = {"marker": "o", "markersize": 3.5, "linewidth": 1.4, "linestyle": "-"}


def panel_grid(count: int, *, width: float = 4.4, height: float = 3.5) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``count`` panels (3 per row at most) and no unused ones visible;
    the height leaves room for a two-line title above and a legend below."""
    columns = max(1, min(count, 3))
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(width * columns + 1.0, height * rows + 1.6), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for panel in grid.flat[count:]:
        panel.set_visible(False)
    return figure, list(grid.flat[:count])


def draw_mean_band(panel: Axes, x: np.ndarray, mean: np.ndarray, std: np.ndarray, color, *, floor: float | None = None) -> None:
    """A mean line with markers and a band of +-1 std (std NaN, one trial: no band); cut at ``floor``."""
    order = np.argsort(x)
    x, mean, std = x[order], mean[order], np.nan_to_num(std[order])
    panel.plot(x, mean, color=color, **MEAN_LINE)
    lower = mean - std if floor is None else np.maximum(mean - std, floor)
    panel.fill_between(x, lower, mean + std, color=color, alpha=0.18, linewidth=0)
