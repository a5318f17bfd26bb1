"""A final metric against beta: the layout shared by ``accuracy_vs_beta`` and ``rate_vs_beta``.

The figure shows the metric of each finished trial's last epoch against ``config/beta``: the
mean over seeds as a solid line with a band of +-1 sample standard deviation (ddof=1), and an
optional second metric as a dashed line of the same colour (mean only). There is one line per
configuration of the other swept axes (e.g. ``latent_dim=2`` and ``latent_dim=256``). The x axis
is logarithmic; when the sweep includes beta = 0 it is symlog, linear between 0 and the smallest
positive beta, so beta = 0 appears at the left as x = 0; its ticks are the swept betas. The legend,
below the axes, names each drawn line (configuration and metric). A table per metric gives
"mean ± std (n)" per configuration (rows) and beta (columns). Only TERMINATED trials count;
ERROR trials are listed with the last line of their error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from orchestrator.reports.common import (
    FINISHED,
    SweepResults,
    config_column,
    error_summary,
    format_mean_std,
    format_value,
    summarize_over_seeds,
)
from orchestrator.reports.document import FigureFile, Section, Table, save_figure
from orchestrator.reports.style import configuration_color, legend_below, set_swept_ticks


@dataclass(frozen=True)
class VersusBeta:
    """What one metric-vs-beta report draws."""

    report: str  # the report's name; its figure is "<report>.png"
    quantity: str  # in words, for titles, e.g. "test accuracy"
    primary: str  # metric drawn solid with a +-1 std band, e.g. "test/acc"
    secondary: str | None  # metric drawn dashed in the same colour (mean only), when present
    ylabel: str  # with units
    log_y: bool  # log y axis when every plotted mean is positive
    list_errors: bool = True  # append the ERROR trials table (off for a second section of one report)


def versus_beta_sections(results: SweepResults, out_dir: Path, spec: VersusBeta) -> list[Section]:
    """The sections of one metric-vs-beta report; writes ``out_dir/<spec.report>.png``."""
    info = results.info
    title = f"{spec.quantity[0].upper()}{spec.quantity[1:]} vs beta"
    errors = error_table(results) if spec.list_errors else None
    if "beta" not in info.axes:
        swept = ", ".join(f"`{axis}`" for axis in info.axes) or "none"
        text = f"Sweep `{info.name}` does not sweep `beta` (swept axes: {swept}), so there is no {spec.quantity} vs beta."
        return [Section(title, [text], tables=[errors] if errors else [])]
    if spec.primary not in results.final.columns:
        text = f"`final.parquet` has no `{spec.primary}` column, so there is no {spec.quantity} vs beta."
        return [Section(title, [text], tables=[errors] if errors else [])]

    metrics = [m for m in (spec.primary, spec.secondary) if m is not None and m in results.final.columns]
    others = [axis for axis in info.axes if axis != "beta"]
    finished = results.finished
    summaries = {metric: _by_configuration(summarize_over_seeds(finished, metric, others + ["beta"]), others) for metric in metrics}
    configurations = sweep_configurations(results.final, others)
    betas = sorted(float(beta) for beta in results.final[config_column("beta")].dropna().unique())

    paragraphs = [_describe(spec, metrics, others), counts_sentence(results)]
    figures = []
    if any(summary for summary in summaries.values()):
        figure, scale_note, y_note = _plot(results, spec, metrics, summaries, configurations, others)
        save_figure(figure, out_dir / f"{spec.report}.png")
        paragraphs.append(scale_note + y_note)
        caption = (
            f"{info.name}: final {' and '.join(f'`{m}`' for m in metrics)} vs beta; "
            f"band = mean ± 1 sample standard deviation over seeds of `{spec.primary}`."
        )
        figures.append(FigureFile(f"{spec.report}.png", caption))
    else:
        paragraphs.append(f"No finished trial reported `{spec.primary}`, so there is no figure.")

    tables = [_metric_table(metric, summaries[metric], configurations, others, betas) for metric in metrics]
    if errors:
        tables.append(errors)
    return [Section(title, paragraphs, figures, tables)]


def error_table(results: SweepResults) -> Table | None:
    """The ERROR trials with their swept config, seed, epochs completed and error; None if none."""
    errored = results.errored
    if errored.empty:
        return None
    keys = list(results.info.axes) + (["seed"] if config_column("seed") in errored.columns else [])
    rows = [
        [str(row["trial_id"]), *(format_value(row[config_column(key)]) for key in keys), format_value(row["epochs_completed"]), error_summary(row["error"])]
        for _, row in errored.sort_values("trial_id").iterrows()
    ]
    caption = f"ERROR trials ({len(rows)}), excluded from every mean above"
    return Table(caption, ["trial_id", *keys, "epochs_completed", "error (last line)"], rows)


def apply_beta_scale(axes: Axes, betas: list[float]) -> str:
    """Give ``axes`` a log beta axis on which beta = 0 still appears, with ticks at the swept
    ``betas`` only (:func:`orchestrator.reports.style.set_swept_ticks`); returns a sentence saying how."""
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


def _plot(results, spec, metrics, summaries, configurations, others) -> tuple[Figure, str, str]:
    lines = len(configurations) * len(metrics)
    figure = Figure(figsize=(7.5, 4.8 + 0.2 * min(lines, 12)), layout="constrained")  # the legend goes below
    axes = figure.add_subplot()
    axes.set_xlabel("beta")
    scale_note = apply_beta_scale(axes, [beta for summary in summaries.values() for (_, beta) in summary])
    means = np.array([value[0] for summary in summaries.values() for value in summary.values()])
    log_y = spec.log_y and bool(np.all(means > 0))
    floor = float(means.min()) / 10 if log_y else None
    clipped = False
    handles = {metric: [] for metric in metrics}  # the drawn lines themselves: a legend entry is its line
    for index, configuration in enumerate(configurations):
        color = configuration_color(index)
        for metric, style in zip(metrics, ("-", "--")):
            points = sorted((beta, value) for (key, beta), value in summaries[metric].items() if key == configuration)
            if not points:
                continue
            x = np.array([beta for beta, _ in points])
            mean = np.array([value[0] for _, value in points])
            std = np.nan_to_num(np.array([value[1] for _, value in points]))
            what = f"{metric} (mean ± 1 std)" if metric == spec.primary else f"{metric} (mean)"
            (line,) = axes.plot(x, mean, linestyle=style, marker="o" if style == "-" else "s", markersize=4, color=color,
                                label=f"{configuration_label(others, configuration)}: {what}" if others else what)
            handles[metric].append(line)
            if metric == spec.primary:
                lower = mean - std
                if floor is not None and np.any(lower <= 0):
                    clipped = True
                    lower = np.maximum(lower, floor)
                axes.fill_between(x, lower, mean + std, color=color, alpha=0.2, linewidth=0)
    if log_y:
        axes.set_yscale("log")
        if clipped:
            axes.set_ylim(bottom=floor)
    axes.set_ylabel(spec.ylabel)
    axes.set_title(f"{results.info.name}: {spec.quantity} vs beta ({len(results.finished)} finished trials)")
    axes.grid(True, which="major", alpha=0.3)
    # one column per metric, one row per configuration
    legend_below(figure, [line for metric in metrics for line in handles[metric]], columns=sum(1 for m in metrics if handles[m]))
    y_note = ""
    if log_y:
        y_note = " The y axis is logarithmic" + (", and the band is cut at the bottom of the axis where mean - std <= 0." if clipped else ".")
    return figure, scale_note, y_note


def _by_configuration(summary: pd.DataFrame, others: list[str]) -> dict[tuple[tuple[str, ...], float], tuple[float, float, int]]:
    """``{(configuration, beta): (mean, std, n)}`` for the cells with at least one value."""
    cells = {}
    for _, row in summary.iterrows():
        if row["n"] > 0:
            key = tuple(format_value(row[config_column(axis)]) for axis in others)
            cells[(key, float(row[config_column("beta")]))] = (float(row["mean"]), float(row["std"]), int(row["n"]))
    return cells


def sweep_configurations(final: pd.DataFrame, others: list[str]) -> list[tuple[str, ...]]:
    """Every configuration of the other swept axes present in the sweep (finished or not)."""
    if not others:
        return [()]
    unique = final[[config_column(axis) for axis in others]].drop_duplicates()
    unique = unique.sort_values(list(unique.columns), na_position="last")
    return [tuple(format_value(value) for value in row) for row in unique.itertuples(index=False)]


def configuration_label(others: list[str], configuration: tuple[str, ...]) -> str:
    """``"latent_dim=2, temperature=0.5"`` for a configuration of ``others``; ``"all trials"`` for none."""
    return ", ".join(f"{axis}={value}" for axis, value in zip(others, configuration)) or "all trials"


def _metric_table(metric, cells, configurations, others, betas) -> Table:
    header = [*(others or ["configuration"]), *(f"beta={format_value(beta)}" for beta in betas)]
    rows = []
    for configuration in configurations:
        values = [cells.get((configuration, beta), (float("nan"), float("nan"), 0)) for beta in betas]
        rows.append([*(configuration or ("all trials",)), *(format_mean_std(*value) for value in values)])
    caption = f"Final `{metric}`: mean ± sample std over seeds (number of finished trials)"
    return Table(caption, header, rows)


def _describe(spec: VersusBeta, metrics: list[str], others: list[str]) -> str:
    names = ", ".join(f"`{axis}`" for axis in others)
    lines = "one line" if not others else f"one line per value of {names}" if len(others) == 1 else f"one line per combination of {names}"
    text = f"Final-epoch `{spec.primary}` against `beta` (solid; band = mean ± 1 sample standard deviation over seeds)"
    if len(metrics) > 1:
        text += f" and `{metrics[1]}` (dashed, same colour, mean only)"
    return text + f", {lines}."


def counts_sentence(results: SweepResults) -> str:
    """"Means use the N finished (TERMINATED) trials only; excluded: ..." for a section's text."""
    counts = results.status_counts()
    finished = counts.get(FINISHED, 0)
    excluded = ", ".join(f"{count} {status}" for status, count in counts.items() if status != FINISHED)
    text = f"Means use the {finished} finished (TERMINATED) trials only"
    return text + (f"; excluded: {excluded}." if excluded else ".")
