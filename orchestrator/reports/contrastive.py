"""Reports of the self-supervised objectives ``simclr_dib`` and ``hybrid``.

- ``linear_evaluation`` (``simclr_dib``): Zhang et al.'s Table I layout — one table per
  temperature (per configuration of the swept axes other than beta), one row per beta ("SimCLR"
  at beta = 0, "Compressive" above), the linear probe's train and test accuracy in percent, the
  probe on the rounded representation and the test rate; the paper's Table I beside them.
- ``hybrid_tradeoff`` (``hybrid``): reconstruction against linear accuracy across alpha
  (``hybrid_tradeoff.png``: test MSE vs the probe's test accuracy, one line per temperature
  through the alphas, and the probe on each latent half against alpha), the learning curves
  (``hybrid_curves.png``), a table per alpha and temperature, the paper's Table 1, and whether
  FID was computed (it never is: ``fid_weights`` must be empty).

``interpolation`` (the hybrid's Figures 2-4) is in :mod:`orchestrator.reports.interpolation`.

Only finished (TERMINATED) trials count; means and sample standard deviations are over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from orchestrator.reports import register_report
from orchestrator.reports.common import SweepResults, config_column, format_value, summarize_over_seeds
from orchestrator.reports.document import FigureFile, Section, Table, save_figure
from orchestrator.reports.style import LEGEND_COLUMNS, beta_colors, configuration_color, legend_below
from orchestrator.reports.versus_beta import configuration_label, counts_sentence, error_table, sweep_configurations

# Zhang et al., Table I (linear evaluation on CIFAR-10, temperature 0.07): (model, beta, train %, test %).
ZHANG_TABLE_I = (("SimCLR", 0.0, 71.97, 71.04), ("Compressive", 0.05, 71.51, 71.06),
                 ("Compressive", 0.1, 71.73, 71.31), ("Compressive", 0.5, 71.14, 70.66))
# Sinha et al., Table 1, CIFAR-10: (method, MSE, FID, linear accuracy %); "" where the paper has none.
SINHA_TABLE_1 = (("Hybrid", "2.6", "34.6", "77.6"), ("MoCo-v2", "–", "–", "78.3"))
FID_SKIPPED = "FID skipped: no local Inception weights configured (config key fid_weights empty)."


def _percent(mean: float, std: float, n: int) -> str:
    if n == 0 or pd.isna(mean):
        return "–"
    return f"{100 * mean:.2f} ({n})" if pd.isna(std) else f"{100 * mean:.2f} ± {100 * std:.2f} ({n})"


def _plain(mean: float, std: float, n: int, digits: int = 4) -> str:
    if n == 0 or pd.isna(mean):
        return "–"
    return f"{mean:.{digits}g} ({n})" if pd.isna(std) else f"{mean:.{digits}g} ± {std:.2g} ({n})"


def _cells(results: SweepResults, metric: str, keys: list[str]) -> dict[tuple[str, ...], tuple[float, float, int]]:
    """``{(formatted key values): (mean, std, n)}`` of ``metric`` over seeds; empty if there is no column."""
    if metric not in results.final.columns:
        return {}
    summary = summarize_over_seeds(results.finished, metric, keys)
    return {tuple(format_value(row[config_column(k)]) for k in keys): (row["mean"], row["std"], int(row["n"]))
            for _, row in summary.iterrows()}


# ---- linear_evaluation ---------------------------------------------------------------------

@register_report("linear_evaluation")
def linear_evaluation(results: SweepResults, out_dir: Path) -> list[Section]:
    """The linear evaluation in Table I's layout (no figure: ``accuracy_vs_beta`` draws it)."""
    title = "Linear evaluation (Zhang et al., Table I layout)"
    info = results.info
    if "beta" not in info.axes or "test/acc" not in results.final.columns:
        return [Section(title, [f"Sweep `{info.name}` has no swept `beta` or no `test/acc`, so there is no Table I."])]
    others = [axis for axis in info.axes if axis != "beta"]
    configurations = sweep_configurations(results.final, others)
    betas = sorted(float(b) for b in results.final[config_column("beta")].dropna().unique())
    keys = others + ["beta"]
    metrics = (("train/acc", "train acc (%)", _percent), ("test/acc", "test acc (%)", _percent),
               ("test/rate_bits", "test rate (bits)", _plain), ("probe/rounded_test_acc", "test acc, h_hat (%)", _percent))
    cells = {metric: _cells(results, metric, keys) for metric, _, _ in metrics}
    header = ["model", *(label for _, label, _ in metrics)]
    tables = []
    for configuration in configurations:
        rows = []
        for beta in betas:
            row = ["SimCLR (beta=0)" if beta == 0 else f"Compressive (beta={beta:g})"]
            for metric, _, fmt in metrics:
                row.append(fmt(*cells[metric].get((*configuration, format_value(beta)), (np.nan, np.nan, 0))))
            rows.append(row)
        tables.append(Table(f"`{info.name}`, {configuration_label(others, configuration)}: linear evaluation per beta", header, rows))
    paragraphs = [
        "Linear evaluation of the frozen encoder: a logistic regression (MinMaxScaler, L2, C = 1) fitted on the "
        "continuous representation `h` of the whole training split, read on both splits; `test acc, h_hat` is the "
        "same probe on the rounded representation whose rate beta prices. Cells are mean ± sample std over seeds "
        "(number of finished trials), in percent.",
        counts_sentence(results),
    ]
    best = _best(cells["test/acc"], keys)
    if best:
        paragraphs.append(best)
    reference = Table("Zhang et al., Table I: linear evaluation on CIFAR-10, temperature 0.07 (%)",
                      ["model", "train accuracy", "test accuracy"],
                      [[f"{m} (beta={b:g})" if b else f"{m} (beta=0)", f"{tr:.2f}", f"{te:.2f}"] for m, b, tr, te in ZHANG_TABLE_I])
    tables.append(reference)
    errors = error_table(results)
    return [Section(title, paragraphs, tables=tables + ([errors] if errors else []))]


def _best(cells: dict, keys: list[str]) -> str:
    if not cells:
        return ""
    key, (mean, _, _) = max(cells.items(), key=lambda item: -np.inf if pd.isna(item[1][0]) else item[1][0])
    where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
    baseline = cells.get((*key[:-1], format_value(0.0)))
    text = f"Highest mean test accuracy: {100 * mean:.2f}% at {where}"
    if baseline and key[-1] != format_value(0.0):
        text += f"; SimCLR (beta=0) with the other settings equal: {100 * baseline[0]:.2f}%"
    return text + "."


# ---- hybrid_tradeoff -----------------------------------------------------------------------

TRADEOFF_METRICS = (("test/mse", "test MSE / pixel"), ("test/sse", "test SSE / image"), ("test/acc", "probe, whole (%)"),
                    ("probe/first_half_test_acc", "probe, first half (%)"),
                    ("probe/second_half_test_acc", "probe, second half (%)"), ("train/acc", "probe train, whole (%)"),
                    ("test/info_nce", "test InfoNCE (nats)"))


@register_report("hybrid_tradeoff")
def hybrid_tradeoff(results: SweepResults, out_dir: Path) -> list[Section]:
    """Reconstruction vs linear accuracy across alpha; writes ``hybrid_tradeoff.png`` and ``hybrid_curves.png``."""
    title = "Reconstruction vs linear accuracy across alpha (Sinha et al.)"
    info = results.info
    final = results.finished
    needed = [c for c in ("test/mse", "test/acc", config_column("alpha")) if c not in results.final.columns]
    if needed:
        return [Section(title, [f"`final.parquet` lacks {', '.join(f'`{c}`' for c in needed)}, so there is no trade-off."])]
    others = [axis for axis in info.axes if axis != "alpha"]
    keys = others + ["alpha"]
    cells = {metric: _cells(results, metric, keys) for metric, _ in TRADEOFF_METRICS}
    configurations = sweep_configurations(results.final, others)
    alphas = sorted(float(a) for a in results.final[config_column("alpha")].dropna().unique())
    rows = []
    for configuration in configurations:
        for alpha in alphas:
            key = (*configuration, format_value(alpha))
            values = [cells[m].get(key, (np.nan, np.nan, 0)) for m, _ in TRADEOFF_METRICS]
            formatted = [(_percent if "%" in label else _plain)(*v) for (_, label), v in zip(TRADEOFF_METRICS, values)]
            rows.append([configuration_label(others, configuration), f"{alpha:g}", *formatted])
    table = Table(f"`{info.name}`: final metrics per alpha (mean ± sample std over seeds, number of finished trials)",
                  ["configuration", "alpha", *(label for _, label in TRADEOFF_METRICS)], rows)
    reference = Table("Sinha et al., Table 1, CIFAR-10 (the paper does not state the unit of its MSE)",
                      ["method", "MSE", "FID", "linear accuracy (%)"], [list(row) for row in SINHA_TABLE_1])
    paragraphs = [
        "alpha weighs the squared reconstruction error of the whole latent against MoCo-v2's InfoNCE on its first "
        "half. MSE is per pixel and channel with pixels in [0, 1] (multiply by 255² for 8-bit pixel units; SSE is "
        "per image). The probes are logistic regressions on the frozen latent: whole, first (contrastive) half, "
        "second half.",
        counts_sentence(results),
        _fid_sentence(results),
    ]
    figures = []
    if not final.empty and final["test/mse"].notna().any():
        save_figure(_tradeoff_figure(results, cells, configurations, others, alphas), out_dir / "hybrid_tradeoff.png")
        figures.append(FigureFile("hybrid_tradeoff.png", f"{info.name}: left, test MSE against the linear probe's test "
                                  "accuracy on the whole latent, one line per configuration through its alphas (labels); "
                                  "right, the probe's test accuracy on the whole latent and on each half against alpha."))
    if "test/mse" in results.epochs.columns:
        save_figure(_curves_figure(results), out_dir / "hybrid_curves.png")
        figures.append(FigureFile("hybrid_curves.png", f"{info.name}: test MSE and the probe's test accuracy after each "
                                  "epoch (the probe runs every `probe_every` epochs), one line per trial, coloured by alpha."))
    errors = error_table(results)
    return [Section(title, paragraphs, figures, [table, reference] + ([errors] if errors else []))]


def _fid_sentence(results: SweepResults) -> str:
    column = config_column("fid_weights")
    configured = results.final[column].fillna("").astype(str).str.len() > 0 if column in results.final.columns else []
    if len(configured) and configured.any():
        return "FID: some trials name `fid_weights`, but this release computes no FID; no FID is reported."
    return FID_SKIPPED + " The paper's FID is of DDIM samples drawn from the latent, a generative model this project does not train."


PROBES = (("test/acc", "-", "whole latent"), ("probe/first_half_test_acc", "--", "first (contrastive) half"),
          ("probe/second_half_test_acc", ":", "second half"))


def _tradeoff_figure(results, cells, configurations, others, alphas) -> Figure:
    figure = Figure(figsize=(11.5, 4.8 + 0.2 * min(len(configurations), 6)), layout="constrained")  # the legend goes below
    left, right = figure.subplots(1, 2)
    handles: dict[str, list] = {probe: [] for _, _, probe in PROBES}  # one legend column per probe, one row per configuration
    for index, configuration in enumerate(configurations):
        color, label = configuration_color(index), configuration_label(others, configuration)
        points = [(a, cells["test/mse"].get((*configuration, format_value(a))), cells["test/acc"].get((*configuration, format_value(a))))
                  for a in alphas]
        points = [(a, m, c) for a, m, c in points if m and c and m[2] and c[2]]
        if points:
            x = np.array([m[0] for _, m, _ in points])
            y = 100 * np.array([c[0] for _, _, c in points])
            left.errorbar(x, y, xerr=np.nan_to_num([m[1] for _, m, _ in points]),
                          yerr=100 * np.nan_to_num([c[1] for _, _, c in points]), color=color, marker="o", markersize=4, capsize=2)
            for (alpha, _, _), xi, yi in zip(points, x, y):
                left.annotate(f"α={alpha:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize="small", color=color)
        for metric, style, probe in PROBES:
            line = [(a, cells[metric].get((*configuration, format_value(a)))) for a in alphas]
            line = [(a, v[0]) for a, v in line if v and v[2]]
            if line:
                (drawn,) = right.plot([a for a, _ in line], [100 * v for _, v in line], linestyle=style, marker="o", markersize=4,
                                      color=color, label=f"{label}: probe on the {probe}" if others else f"probe on the {probe}")
                handles[probe].append(drawn)
    left.set_xlabel("test MSE per pixel (pixels in [0, 1])")
    left.set_ylabel("linear probe test accuracy, whole latent (%)")
    left.set_title("reconstruction vs linear accuracy (whole latent)")
    left.grid(True, alpha=0.3)
    right.set_xlabel("alpha (weight of the reconstruction)")
    right.set_ylabel("linear probe test accuracy (%)")
    right.set_title("probe on the whole latent and on each half")
    right.grid(True, alpha=0.3)
    legend_below(figure, [line for probe in handles for line in handles[probe]], columns=sum(1 for lines in handles.values() if lines))
    figure.suptitle(f"{results.info.name}: mean over seeds ({len(results.finished)} finished trials)")
    return figure


def _curves_figure(results: SweepResults) -> Figure:
    figure = Figure(figsize=(11.5, 4.8), layout="constrained")  # the legend goes below
    panels = figure.subplots(1, 2)
    final = results.final.set_index("trial_id")
    alphas = sorted({float(a) for a in final[config_column("alpha")].dropna()})
    color_of = beta_colors(alphas)  # alpha is this sweep's beta: the same palette, the same distinct neighbours
    others = [axis for axis in results.info.axes if axis != "alpha"]
    configurations = sweep_configurations(results.final, others)
    styles = ("-", "--", ":", "-.")
    style_of = {c: styles[i % len(styles)] for i, c in enumerate(configurations)}
    drawn = {}  # (alpha, configuration) -> the style it was drawn with, for its legend entry
    for trial_id, trial in results.epochs.groupby("trial_id", sort=True):
        trial = trial.sort_values("epoch")
        row = final.loc[trial_id] if trial_id in final.index else None
        alpha = math.nan if row is None else float(row[config_column("alpha")])
        key = () if row is None else tuple(format_value(row[config_column(axis)]) for axis in others)
        style = {"color": color_of(alpha), "linestyle": style_of.get(key, "-"), "marker": ".", "linewidth": 1.1}
        for panel, metric, scale in ((panels[0], "test/mse", 1.0), (panels[1], "test/acc", 100.0)):
            if metric in trial.columns:
                points = trial.dropna(subset=[metric])
                if not points.empty:
                    panel.plot(points["epoch"], scale * points[metric], **style)
                    drawn[(alpha, key)] = style
    panels[0].set_yscale("log")
    panels[0].set_ylabel("test MSE per pixel (log scale)")
    panels[1].set_ylabel("linear probe test accuracy, whole latent (%)")
    for panel in panels:
        panel.set_xlabel("epoch")
        panel.grid(True, alpha=0.3)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    order = {c: i for i, c in enumerate(configurations)}
    entries = sorted(drawn.items(), key=lambda item: (math.inf if math.isnan(item[0][0]) else item[0][0], order.get(item[0][1], len(order))))
    handles = [Line2D([], [], **style, label=(f"alpha={format_value(alpha)}" if not math.isnan(alpha) else "no alpha")
                      + (f", {configuration_label(others, key)}" if others else ""))
               for (alpha, key), style in entries]
    # one column per alpha (as far as they fit), one row per configuration
    legend_below(figure, handles, columns=min(len({alpha for (alpha, _), _ in entries}), LEGEND_COLUMNS))
    figure.suptitle(f"{results.info.name}: learning curves, one line per trial")
    return figure
