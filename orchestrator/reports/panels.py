"""Figures of one panel per configuration, one line per beta: the layout of the evaluation figures.

``fgsm_curves.png``, ``cw_l2_curves.png`` and ``spectra.png`` share it: a grid of at most three
panels per row, one per configuration of the swept axes other than beta, and one colour per beta
(viridis, evenly spaced by rank, named in a legend; a colour bar when there are more than 12 betas,
as in ``curves.png``).
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from orchestrator.reports.evaluation_data import beta_label

MAX_LEGEND_BETAS = 12  # more distinct betas than this get a colour bar instead of a legend


def panel_grid(count: int, *, width: float = 4.4, height: float = 3.5) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``count`` panels (3 per row at most) and no unused ones visible."""
    columns = max(1, min(count, 3))
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(width * columns + 2.0, height * rows + 0.8), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for panel in grid.flat[count:]:
        panel.set_visible(False)
    return figure, list(grid.flat[:count])


def beta_colors(betas: list[float]):
    """A colour per beta, and the norm of a colour bar (None when a legend lists the betas)."""
    cmap = matplotlib.colormaps["viridis"]
    finite = sorted(beta for beta in betas if not math.isnan(beta))
    if len(finite) <= MAX_LEGEND_BETAS:
        rank = {beta: index for index, beta in enumerate(finite)}
        spread = max(len(finite) - 1, 1)
        return (lambda beta: "black" if math.isnan(beta) else cmap(0.9 * rank[beta] / spread)), None
    positive = [beta for beta in finite if beta > 0]
    if min(finite) > 0:
        norm = LogNorm(vmin=min(finite), vmax=max(finite))
    elif positive:
        norm = SymLogNorm(linthresh=min(positive), vmin=min(finite), vmax=max(finite))
    else:
        norm = Normalize(vmin=min(finite), vmax=max(finite))
    return (lambda beta: "black" if math.isnan(beta) else cmap(norm(beta))), norm


def beta_legend(figure: Figure, panels: list[Axes], betas: list[float], color_of, norm, objective: str = "") -> None:
    """A legend of the betas right of the panels, or a colour bar when ``norm`` is given."""
    if norm is None:
        handles = [Line2D([], [], color=color_of(beta), marker="o", markersize=4, label=beta_label(beta, objective)) for beta in betas]
        figure.legend(handles=handles, loc="outside right upper", fontsize="small", title="beta")
        return
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis")
    figure.colorbar(mappable, ax=panels, label="beta")


def draw_mean_band(panel: Axes, x: np.ndarray, mean: np.ndarray, std: np.ndarray, color, *, floor: float | None = None) -> None:
    """A mean line with markers and a band of +-1 std (std NaN, one trial: no band); cut at ``floor``."""
    order = np.argsort(x)
    x, mean, std = x[order], mean[order], np.nan_to_num(std[order])
    panel.plot(x, mean, color=color, marker="o", markersize=3.5, linewidth=1.4)
    lower = mean - std if floor is None else np.maximum(mean - std, floor)
    panel.fill_between(x, lower, mean + std, color=color, alpha=0.18, linewidth=0)
