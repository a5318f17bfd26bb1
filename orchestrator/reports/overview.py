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

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from orchestrator.reports.data import ERROR, SweepResults, beta_label, config_column, format_value, percent_scale, sweep_betas
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import add_beta_key, beta_colors, save_figure

CURVES_FILE = "curves.png"
_ERROR_END = {"color": "black", "marker": "x", "markersize": 7, "linestyle": "none"}  # the last epoch of an ERROR trial
_MARKERS_BELOW = 30  # trials shorter than this many epochs get a dot at every epoch


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
    # the sweep's betas, so that a beta has the colour it has in every other figure of the report
    color_of = beta_colors(sweep_betas(results) if "beta" in results.info.axes else betas)
    style = {"linewidth": 1.2, "marker": "." if epochs.groupby("trial_id").size().max() < _MARKERS_BELOW else "None"}

    if others:
        groups = list(epochs.groupby([config_column(axis) for axis in others], dropna=False, sort=True))
    else:
        groups = [((), epochs)]
    columns = min(len(groups), 3)
    rows = math.ceil(len(groups) / columns)
    figure = Figure(figsize=(4.2 * columns + 0.6, 3.4 * rows + 1.4), layout="constrained")  # the legend goes below
    panels = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    errors_drawn = False
    for panel, (key, group) in zip(panels.flat, groups):
        key = key if isinstance(key, tuple) else (key,)
        for trial_id, trial in group.groupby("trial_id", sort=True):
            trial = trial.sort_values("epoch")
            beta = trial[beta_column].iloc[0]
            panel.plot(
                trial["epoch"],
                trial["test/acc"],
                color=color_of(math.nan if pd.isna(beta) else float(beta)),
                linestyle=":" if status.get(trial_id) == ERROR else "-",
                **style,
            )
            if status.get(trial_id) == ERROR:
                panel.plot(trial["epoch"].iloc[-1:], trial["test/acc"].iloc[-1:], **_ERROR_END)
                errors_drawn = True
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
    unit = "%" if percent_scale(epochs["test/acc"]) == 1.0 else "fraction correct"
    for panel in panels[:, 0]:
        panel.set_ylabel(f"test accuracy ({unit})")
    figure.suptitle(f"{results.info.name}: test/acc per epoch, one line per trial")

    extra = []
    if errors_drawn:
        extra.append(Line2D([], [], **_ERROR_END, label="last epoch of an ERROR trial (its line dotted)"))
    objective = results.info.objective or ""
    add_beta_key(figure, list(panels.flat[: len(groups)]), color_of, betas, [beta_label(beta, objective) for beta in betas],
                 {**style, "linestyle": "-"}, extra=extra, colorbar_label="beta" + (" (dotted: ERROR trials)" if extra else ""))
    return figure
