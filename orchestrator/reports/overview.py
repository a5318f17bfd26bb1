"""The sections at the top of every report: the sweep header and the learning curves.

The header names the sweep (description, paper, objective, dataset, run name, swept axes, seeds,
the metric Tune optimised) and counts its trials by status. The figure ``curves.png`` shows
``test/acc`` per epoch of every trial in ``epochs.parquet``, coloured by beta; there is one panel
per configuration of the other swept axes, and ERROR trials are dotted with an x at their last
epoch. It is drawn only when ``epochs.parquet`` has both ``test/acc`` and ``config/beta``.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.colors import LogNorm, Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from orchestrator.reports.common import ERROR, SweepResults, config_column, format_value
from orchestrator.reports.document import FigureFile, Section, Table, save_figure

CURVES_FILE = "curves.png"
_MAX_LEGEND_BETAS = 12  # more distinct betas than this get a colour bar instead of a legend


def overview_sections(results: SweepResults, out_dir: Path) -> list[Section]:
    """The sweep header and the learning curves; writes ``out_dir/curves.png`` when it can."""
    return [_header(results), _learning_curves(results, out_dir)]


def _header(results: SweepResults) -> Section:
    info = results.info
    counts = results.status_counts()
    seeds = results.final[config_column("seed")].nunique() if config_column("seed") in results.final.columns else None
    rows = [
        ["name", f"`{info.name}`"],
        ["description", info.description or "–"],
        ["paper", info.paper or "–"],
        ["objective", f"`{info.objective}`" if info.objective else "–"],
        ["dataset", f"`{info.dataset}`" if info.dataset else "–"],
        ["run name", f"`{info.run_name}`" if info.run_name else "–"],
        ["swept axes", ", ".join(f"`{axis}`" for axis in info.axes) or "none"],
        ["distinct seeds", "–" if seeds is None else str(seeds)],
        ["metric (mode)", f"`{info.metric}` ({info.mode})" if info.metric else "–"],
        ["trials", f"{len(results.final)}" + (" (" + ", ".join(f"{status} {count}" for status, count in counts.items()) + ")" if counts else "")],
    ]
    text = f"Rebuilt from `final.parquet` and `epochs.parquet` in `{results.directory}`."
    return Section("Sweep", [text], tables=[Table("The sweep and its trials", ["field", "value"], rows)])


def _learning_curves(results: SweepResults, out_dir: Path) -> Section:
    epochs = results.epochs
    missing = [column for column in ("test/acc", config_column("beta")) if column not in epochs.columns]
    if missing:
        names = " and ".join(f"`{column}`" for column in missing)
        return Section("Learning curves", [f"No learning-curves figure: `epochs.parquet` has no {names} column."])
    if epochs["test/acc"].notna().sum() == 0:
        return Section("Learning curves", ["No learning-curves figure: no epoch reported `test/acc`."])
    save_figure(_plot_curves(results), out_dir / CURVES_FILE)
    others = [axis for axis in results.info.axes if axis != "beta"]
    names = ", ".join(f"`{axis}`" for axis in others)
    panels = "" if not others else f"one panel per value of {names}; " if len(others) == 1 else f"one panel per combination of {names}; "
    caption = f"`test/acc` after each epoch, one line per trial, coloured by beta; {panels}ERROR trials dotted, their last epoch marked x."
    return Section("Learning curves", figures=[FigureFile(CURVES_FILE, caption)])


def _plot_curves(results: SweepResults) -> Figure:
    epochs = results.epochs.dropna(subset=["test/acc"])
    status = dict(zip(results.final["trial_id"], results.final["status"]))
    others = [axis for axis in results.info.axes if axis != "beta"]
    beta_column = config_column("beta")
    betas = sorted(float(beta) for beta in epochs[beta_column].dropna().unique())
    color_of, colorbar_norm = _beta_colors(betas)

    if others:
        groups = list(epochs.groupby([config_column(axis) for axis in others], dropna=False, sort=True))
    else:
        groups = [((), epochs)]
    columns = min(len(groups), 3)
    rows = math.ceil(len(groups) / columns)
    figure = Figure(figsize=(4.2 * columns + 1.5, 3.4 * rows + 0.6), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    for panel, (key, group) in zip(panels.flat, groups):
        key = key if isinstance(key, tuple) else (key,)
        for trial_id, trial in group.groupby("trial_id", sort=True):
            trial = trial.sort_values("epoch")
            beta = trial[beta_column].iloc[0]
            panel.plot(
                trial["epoch"],
                trial["test/acc"],
                color="grey" if pd.isna(beta) else color_of(float(beta)),
                linestyle=":" if status.get(trial_id) == ERROR else "-",
                marker="." if len(trial) < 30 else None,
                linewidth=1.2,
            )
            if status.get(trial_id) == ERROR:
                panel.plot(trial["epoch"].iloc[-1:], trial["test/acc"].iloc[-1:], color="black", marker="x", markersize=7, linestyle="none")
        label = ", ".join(f"{axis}={format_value(value)}" for axis, value in zip(others, key))
        panel.set_title(label or "all trials", fontsize="medium")
        panel.grid(True, alpha=0.3)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    for panel in panels.flat[len(groups) :]:
        panel.set_visible(False)
    for column in range(columns):
        # The lowest panel in use in each column carries the epoch axis.
        lowest = panels[(len(groups) - 1 - column) // columns, column]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("epoch")
    unit = "%" if (epochs["test/acc"] > 1).any() else "fraction correct"
    for panel in panels[:, 0]:
        panel.set_ylabel(f"test accuracy ({unit})")
    figure.suptitle(f"{results.info.name}: test/acc per epoch, one line per trial")

    if colorbar_norm is None:
        handles = [Line2D([], [], color=color_of(beta), label=f"beta={beta:g}") for beta in betas]
        if ERROR in status.values():
            handles.append(Line2D([], [], color="grey", linestyle=":", marker="x", markeredgecolor="black", label="ERROR trial (x: last epoch)"))
        figure.legend(handles=handles, loc="outside right upper", fontsize="small")
    else:
        mappable = matplotlib.cm.ScalarMappable(norm=colorbar_norm, cmap="viridis")
        note = " (dotted, x at the end: ERROR trials)" if ERROR in status.values() else ""
        figure.colorbar(mappable, ax=panels, label="beta" + note)
    return figure


def _beta_colors(betas: list[float]):
    """A colour per beta, and the norm of a colour bar (None when a legend lists the betas)."""
    cmap = matplotlib.colormaps["viridis"]
    if len(betas) <= _MAX_LEGEND_BETAS:
        # Evenly spaced colours by rank tell a handful of grid values apart best.
        rank = {beta: index for index, beta in enumerate(betas)}
        spread = max(len(betas) - 1, 1)
        return (lambda beta: cmap(0.9 * rank[beta] / spread)), None
    positive = [beta for beta in betas if beta > 0]
    if positive and min(betas) > 0:
        norm = LogNorm(vmin=min(betas), vmax=max(betas))
    elif positive:
        norm = SymLogNorm(linthresh=min(positive), vmin=min(betas), vmax=max(betas))
    else:
        norm = Normalize(vmin=min(betas), vmax=max(betas))
    return (lambda beta: cmap(norm(beta))), norm

