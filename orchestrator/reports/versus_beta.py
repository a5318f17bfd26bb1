"""Reports ``accuracy_vs_beta`` and ``rate_vs_beta``: a final metric against beta, in the layout every such panel shares.

``accuracy_vs_beta.png`` draws ``test/acc``, with ``test/acc_mc`` (the accuracy of the Monte Carlo
evaluation, e.g. VIB's softmax averaged over sampled latents) dashed when the sweep reports it.
``rate_vs_beta.png`` draws ``test/rate_bits``, the objective's compression term in bits per
example as the trial reports it (e.g. the entropy-model rate of the rounded latent for ``dib``),
with ``train/rate_bits`` dashed; its y axis is logarithmic when every plotted mean is positive.

The layout (:func:`versus_beta_sections`, which slices reuse for their own metrics, e.g. dib's
active dimensions and knn_ib's decoders): the metric of each finished trial's last epoch against
``config/beta``, the mean over seeds as a solid line with a band of +-1 sample standard deviation
(ddof=1), and an optional second metric as a dashed line of the same colour (mean only); one line
per configuration of the other swept axes (e.g. ``latent_dim=2`` and ``latent_dim=256``). The
beta axis is logarithmic, symlog when the sweep includes beta = 0 so that it appears at x = 0
(:func:`orchestrator.reports.figures.apply_beta_scale`). The legend, below the axes, names each
drawn line (configuration and metric). A table per metric gives "mean ± std (n)" per
configuration (rows) and beta (columns), with a companion metric that qualifies the primary one
(knn_ib's k-NN bias beside its k-NN rate) tabled and explained when the trials logged it; ERROR
trials are listed with the last line of their error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from orchestrator.reports import register_report
from orchestrator.reports.data import (
    SweepResults,
    config_column,
    configuration_label,
    counts_sentence,
    error_table,
    format_mean_std,
    format_value,
    other_axes,
    percent_scale,
    summarize_over_seeds,
    sweep_betas,
    sweep_configurations,
)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import apply_beta_scale, configuration_color, legend_below, save_figure


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
    companion: str | None = None  # a metric tabled, not drawn, beside the primary when the trials logged it
    companion_note: str = ""  # what the companion says about the primary, printed when it is there


RATE = VersusBeta(
    report="rate_vs_beta",
    quantity="rate",
    primary="test/rate_bits",
    secondary="train/rate_bits",
    ylabel="rate (bits per example)",
    log_y=True,
    companion="test/h_z_knn_bias_bits",
    companion_note=("These trials' rate is a k-NN (Kozachenko-Leonenko) estimate of H(Z) (knn_ib), biased upwards in "
                    "high dimensions: `test/h_z_knn_bias_bits`, tabled below, is that bias measured on a Gaussian of the "
                    "batch's covariance, and the `knn_decoders` report draws H(Z) with it subtracted. Compare rates "
                    "across latent sizes only after that correction (docs/information_plane.md)."),
)


@register_report("accuracy_vs_beta")
def accuracy_vs_beta(results: SweepResults, out_dir: Path) -> list[Section]:
    """Test accuracy vs beta; writes ``out_dir/accuracy_vs_beta.png``."""
    finished = results.finished
    as_percent = "test/acc" in finished.columns and percent_scale(finished["test/acc"]) == 1.0
    spec = VersusBeta(
        report="accuracy_vs_beta",
        quantity="test accuracy",
        primary="test/acc",
        secondary="test/acc_mc",
        ylabel="test accuracy (%)" if as_percent else "test accuracy (fraction correct)",
        log_y=False,
    )
    return versus_beta_sections(results, out_dir, spec)


@register_report("rate_vs_beta")
def rate_vs_beta(results: SweepResults, out_dir: Path) -> list[Section]:
    """Rate vs beta; writes ``out_dir/rate_vs_beta.png``."""
    return versus_beta_sections(results, out_dir, RATE)


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
    others = other_axes(results)
    finished = results.finished
    summaries = {metric: _by_configuration(summarize_over_seeds(finished, metric, others + ["beta"]), others) for metric in metrics}
    configurations = sweep_configurations(results.final, others)
    betas = sweep_betas(results)

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

    if spec.companion is not None and spec.companion in finished.columns and finished[spec.companion].notna().any():
        summaries[spec.companion] = _by_configuration(summarize_over_seeds(finished, spec.companion, others + ["beta"]), others)
        paragraphs.append(spec.companion_note)
    tables = [_metric_table(metric, summaries[metric], configurations, others, betas) for metric in summaries]
    if errors:
        tables.append(errors)
    return [Section(title, paragraphs, figures, tables)]


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
