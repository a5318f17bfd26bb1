"""What every report figure shares, so that every figure reads the same, and how a figure is saved.

- **One colour per swept beta, the same in every figure of a report.** :func:`beta_colors` is
  given the sweep's betas (:func:`orchestrator.reports.data.sweep_betas`), never the subset one
  figure draws. Up to ten betas get tab10's qualitative colours in beta order, so every two
  neighbours are far apart (tests/test_figures.py checks CIE76 delta-E above 40), where a
  sequential map sampled evenly puts them close (viridis: about 20 at seven betas). More betas get
  evenly spaced samples of turbo by rank rather than by value (close values still get distinct
  colours), without its near-black ends, and a colour bar with one segment per beta instead of a
  legend. Lines per configuration of the other axes get Dark2 (:func:`configuration_color`).
- **A beta axis has ticks at the swept values only** (:func:`set_swept_ticks`,
  :func:`apply_beta_scale`), labelled where the labels fit: on a symlog or log axis the default
  ticks (0, 1e-1, 1e0, ...) include values no trial used.
- **Keys never cover a title or data.** :func:`legend_below` puts a figure legend under the
  panels, where constrained layout makes room for it; the titles stay above.
- **A legend entry looks like its line**: each figure builds its handles with the colour, marker
  and line style it draws with (or passes the drawn lines themselves).
- **Evaluation figures share one layout** (:func:`panel_grid`, :func:`draw_mean_band`): at most
  three panels per row, one per configuration, one mean line with a +-1 std band per beta.
- :func:`save_figure` writes a PNG atomically, like every file of a report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, Formatter, NullLocator

from orchestrator.reports.document import write_atomic

QUALITATIVE_BETAS = 10  # up to this many betas: tab10 and a legend; more: turbo by rank and a colour bar
_TURBO_RANGE = (0.05, 0.95)  # turbo's ends are near black
NO_BETA_COLOR = "black"  # the lines of a sweep without a beta axis (label "all trials")
_CONFIGURATION_COLORS = "Dark2"  # lines per configuration of the other axes: not tab10, whose colours mean betas
LEGEND_COLUMNS = 5  # the most columns of a legend below the panels
# Tick labels are thinned with a width estimate, not a renderer: DejaVu Sans digits are 0.64 em wide.
_EM_PER_CHARACTER = 0.64
_GAP_EM = 0.8  # the least space between two tick labels
# How draw_mean_band draws a line, and so how a legend entry for it is drawn.
MEAN_LINE = {"marker": "o", "markersize": 3.5, "linewidth": 1.4, "linestyle": "-"}


@dataclass(frozen=True)
class BetaColors:
    """The colour of each swept beta; call it with a beta to get its RGBA colour."""

    betas: tuple[float, ...]  # finite, ascending
    colors: tuple[tuple[float, float, float, float], ...]  # one per beta

    def __call__(self, beta: float) -> tuple[float, float, float, float] | str:
        """The colour of ``beta``; black for NaN (no beta axis) or a beta the sweep did not list."""
        if beta is None or math.isnan(beta):
            return NO_BETA_COLOR
        try:
            return self.colors[self.betas.index(float(beta))]
        except ValueError:
            return NO_BETA_COLOR

    @property
    def has_legend(self) -> bool:
        """Whether the betas are named in a legend (few) rather than on a colour bar (many)."""
        return len(self.betas) <= QUALITATIVE_BETAS


def beta_colors(betas: Sequence[float]) -> BetaColors:
    """The colours of the sweep's ``betas`` (NaN ignored): tab10 for up to ten, turbo by rank above."""
    finite = tuple(sorted({float(beta) for beta in betas if not math.isnan(beta)}))
    count = len(finite)
    if count <= QUALITATIVE_BETAS:
        palette = matplotlib.colormaps["tab10"]
        colors = tuple(to_rgba(palette(index)) for index in range(count))
    else:
        palette = matplotlib.colormaps["turbo"]
        low, high = _TURBO_RANGE
        colors = tuple(to_rgba(palette(low + (high - low) * index / (count - 1))) for index in range(count))
    return BetaColors(finite, colors)


def configuration_color(index: int) -> tuple[float, float, float, float]:
    """The colour of the ``index``-th configuration of the swept axes other than beta (Dark2, cycled)."""
    palette = matplotlib.colormaps[_CONFIGURATION_COLORS]
    return to_rgba(palette(index % palette.N))


def tick_label(value: float) -> str:
    """A swept value as a tick label: ``0.5``, ``32``, ``0.001``, ``1e-9`` (no zero-padded exponent)."""
    mantissa, exponent_mark, exponent = f"{value:g}".partition("e")
    return mantissa + (f"e{int(exponent)}" if exponent_mark else "")


def set_swept_ticks(axis: Axis, values: Sequence[float], labels: Sequence[str] | None = None) -> None:
    """Ticks on ``axis`` at exactly ``values`` and nowhere else, labelled ``labels`` (default
    :func:`tick_label`) as far as they fit; call it after setting the axis' scale, which resets ticks."""
    values = sorted({float(value) for value in values})
    if labels is None:
        labels = [tick_label(value) for value in values]
    elif len(labels) != len(values):
        raise ValueError(f"set_swept_ticks: {len(labels)} labels for {len(values)} distinct values; expected one label per value")
    axis.set_major_locator(FixedLocator(values))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(SweptValueFormatter(dict(zip(values, labels))))


class SweptValueFormatter(Formatter):
    """Tick labels for ticks at swept values: each value's label, left out ("") where it would run
    into the label before it, so dense grids (e.g. 0.2 ... 0.9 on a symlog axis) stay readable.

    The first and last swept values keep their labels. Whether a label fits is decided at each draw
    from the axis' length in pixels and an estimate of the labels' widths.
    """

    def __init__(self, labels: dict[float, str]):
        self.labels = labels

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.labels.get(float(x), "")

    def format_ticks(self, values) -> list[str]:
        texts = [self(value) for value in values]
        return [text if keep else "" for text, keep in zip(texts, self._fitting(np.asarray(values, dtype=float), texts))]

    def _fitting(self, values: np.ndarray, texts: list[str]) -> list[bool]:
        """Which labels to show: greedily from the lowest value, then the highest in place of its neighbour."""
        axis = self.axis
        if axis is None or len(values) < 2:
            return [True] * len(values)
        horizontal = axis.axis_name == "x"
        transform = axis.get_transform()
        low, high = transform.transform(np.asarray(axis.get_view_interval(), dtype=float).reshape(-1, 1)).ravel()
        length = axis.axes.bbox.width if horizontal else axis.axes.bbox.height
        if not (np.isfinite(low) and np.isfinite(high) and high != low and length > 0):
            return [True] * len(values)
        positions = (transform.transform(values.reshape(-1, 1)).ravel() - low) / (high - low) * length
        size = FontProperties(size=matplotlib.rcParams[f"{axis.axis_name}tick.labelsize"]).get_size_in_points()
        em = size * axis.axes.figure.dpi / 72
        # along a horizontal axis a label takes its width; along a vertical one (horizontal text), its height
        extents = [em * (_EM_PER_CHARACTER * len(text) if horizontal else 1.2) for text in texts]
        order = np.argsort(positions)

        def clear(a: int, b: int) -> bool:
            return abs(positions[b] - positions[a]) >= (extents[a] + extents[b]) / 2 + _GAP_EM * em

        kept = [int(order[0])]
        for index in order[1:]:
            if clear(kept[-1], int(index)):
                kept.append(int(index))
        last = int(order[-1])
        if kept[-1] != last:
            while len(kept) > 1 and not clear(kept[-1], last):
                kept.pop()
            if clear(kept[-1], last):
                kept.append(last)
        chosen = set(kept)
        return [index in chosen for index in range(len(values))]


def legend_below(figure: Figure, handles: list, *, columns: int | None = None, title: str | None = None) -> None:
    """A figure legend under every panel, in ``columns`` columns (default: up to :data:`LEGEND_COLUMNS`),
    filled column by column; constrained layout shrinks the panels to make room for it. Columns are
    dropped one by one while the legend, measured as drawn, is wider than the figure."""
    if not handles:
        return
    columns = max(1, columns if columns is not None else min(len(handles), LEGEND_COLUMNS))
    renderer = RendererAgg(figure.bbox.width, figure.bbox.height, figure.dpi)
    while True:
        legend = figure.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize="small", title=title,
                               title_fontsize="small")
        if columns == 1 or legend.get_window_extent(renderer).width <= figure.bbox.width:
            return
        legend.remove()
        columns -= 1


def add_beta_key(figure: Figure, panels: list[Axes], colors: BetaColors, betas: Sequence[float], labels: Sequence[str],
                 line_style: dict, *, extra: Sequence = (), colorbar_label: str = "beta") -> None:
    """Name the betas drawn in ``figure``: a legend below the panels whose entries are drawn with
    ``line_style`` (the figure's own marker, line style and width) in each beta's colour, or, for
    more than :data:`QUALITATIVE_BETAS` betas, a colour bar with one segment per swept beta.

    ``betas`` are the ones drawn (the legend lists only those), ``labels`` their names; ``extra``
    handles (e.g. how an ERROR trial is drawn) follow the betas in the legend.
    """
    if colors.has_legend or not colors.betas:
        handles = [Line2D([], [], color=colors(beta), label=label, **line_style) for beta, label in zip(betas, labels)]
        legend_below(figure, handles + list(extra), title="beta" if colors.betas else None)
        return
    count = len(colors.betas)
    mappable = ScalarMappable(norm=BoundaryNorm(np.arange(count + 1) - 0.5, count), cmap=ListedColormap(colors.colors))
    bar = figure.colorbar(mappable, ax=panels, label=colorbar_label)
    set_swept_ticks(bar.ax.yaxis, range(count), [tick_label(beta) for beta in colors.betas])
    # the colour bar keeps its own ticker and would put its defaults back when it redraws
    bar.locator, bar.formatter, bar.minorlocator = bar.ax.yaxis.get_major_locator(), bar.ax.yaxis.get_major_formatter(), NullLocator()
    legend_below(figure, list(extra))


def apply_beta_scale(axes: Axes, betas: list[float]) -> str:
    """Give ``axes`` a log beta axis on which beta = 0 still appears, with ticks at the swept
    ``betas`` only (:func:`set_swept_ticks`); returns a sentence saying how."""
    positive = [beta for beta in betas if beta > 0]
    if not positive:
        axes.set_xscale("linear")
        set_swept_ticks(axes.xaxis, betas)
        return "The beta axis is linear (no positive beta was swept)."
    smallest = min(positive)
    if min(betas) <= 0:
        # linscale=1: the linear stretch [0, smallest] is as wide as one decade.
        axes.set_xscale("symlog", linthresh=smallest, linscale=1.0)
        axes.set_xlabel(f"beta (symlog: linear on [0, {smallest:g}], logarithmic above)")
        set_swept_ticks(axes.xaxis, betas)
        return f"The beta axis is symlog: beta = 0 is drawn at x = 0, linear up to {smallest:g} (the smallest positive beta), logarithmic above."
    axes.set_xscale("log")
    axes.set_xlabel("beta (log scale)")
    set_swept_ticks(axes.xaxis, betas)
    return "The beta axis is logarithmic."


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


def save_figure(figure: Figure, path: Path) -> None:
    """Render ``figure`` to a PNG at ``path`` (Agg, 150 dpi), written atomically."""
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=150)
    write_atomic(path, png.getvalue())
