"""Report panels of ``hybrid`` (Sinha, Song and Ermon): the alpha trade-off and the latent interpolations.

- ``hybrid_tradeoff``: reconstruction against linear accuracy across alpha
  (``hybrid_tradeoff.png``: test MSE vs the probe's test accuracy, one line per configuration of
  the other axes through the alphas, and the probe on each latent half against alpha), the
  learning curves (``hybrid_curves.png``), a table per alpha and configuration, the paper's
  Table 1, and whether FID was computed (it never is: the config refuses ``fid_weights``).
- ``interpolation`` (the paper's Figures 2-4): the images rebuilt from the ``interpolation`` rows
  of ``evaluations.parquet`` (written by
  :meth:`trainables.objectives.hybrid.model.HybridBound.interpolation_rows`: five ``grid_shape``
  rows give the shape ``(pairs, steps, C, H, W)``, and one row per pixel of each mode, ``index``
  its flat position), one ``interpolation_<k>.png`` per configuration of the swept axes (its
  lowest-seed finished trial): the whole latent interpolated, only its first (contrastive) half,
  only its second half; a table gives how far each interpolation moves the decoded image.

Only finished (TERMINATED) trials count; means and sample standard deviations are over seeds.
Driver-side: imports no torch.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, absent_sentence, config_column, configuration_label, counts_sentence,
                                       error_table, evaluation_rows, format_mean_std, format_value, seed_cells,
                                       sweep_configurations)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import LEGEND_COLUMNS, beta_colors, configuration_color, legend_below, save_figure

# Sinha et al., Table 1, CIFAR-10: (method, MSE, FID, linear accuracy %); "" where the paper has none.
SINHA_TABLE_1 = (("Hybrid", "2.6", "34.6", "77.6"), ("MoCo-v2", "–", "–", "78.3"))
FID_SKIPPED = "FID skipped: no local Inception weights configured (config key fid_weights empty)."
PERCENT = {"scale": 100.0, "decimals": 2}  # how format_mean_std writes an accuracy cell: percent, two decimals


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
    cells = {metric: seed_cells(results, metric, keys) for metric, _ in TRADEOFF_METRICS}
    configurations = sweep_configurations(results.final, others)
    alphas = sorted(float(a) for a in results.final[config_column("alpha")].dropna().unique())
    rows = []
    for configuration in configurations:
        for alpha in alphas:
            key = (*configuration, format_value(alpha))
            values = [cells[m].get(key, (np.nan, np.nan, 0)) for m, _ in TRADEOFF_METRICS]
            formatted = [format_mean_std(*v, **(PERCENT if "%" in label else {})) for (_, label), v in zip(TRADEOFF_METRICS, values)]
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


# ---- interpolation -------------------------------------------------------------------------

INTERPOLATION_MODES = (("whole", "whole latent"), ("first_half", "first (contrastive) half only"),
                       ("second_half", "second half only"))


@register_report("interpolation")
def interpolation(results: SweepResults, out_dir: Path) -> list[Section]:
    """One ``interpolation_<k>.png`` per configuration, and how far each interpolation moves the image."""
    title = "Latent interpolations (Sinha et al., Figures 2-4)"
    absent = absent_sentence(results, "interpolation figure")
    if absent:
        return [Section(title, [absent])]
    rows = evaluation_rows(results, "interpolation")
    if rows.empty:
        return [Section(title, ["`evaluations.parquet` has no `interpolation` rows of a finished trial, so there is no figure."])]
    seeds = results.final.set_index("trial_id")[config_column("seed")] if config_column("seed") in results.final.columns else None
    figures, movement = [], []
    for number, (configuration, group) in enumerate(sorted(rows.groupby("configuration"), key=lambda item: item[0]), start=1):
        trial_ids = sorted(group["trial_id"].unique(), key=lambda t: (seeds.get(t, 0) if seeds is not None else 0, t))
        trial_id = trial_ids[0]
        images = _images(group[group["trial_id"] == trial_id])
        if images is None:
            continue
        name = f"interpolation_{number}.png"
        save_figure(_interpolation_figure(images, f"{results.info.name}: {configuration}"), out_dir / name)
        seed = f"seed {format_value(seeds.get(trial_id))}, " if seeds is not None else ""
        pairs, steps = images["whole"].shape[:2]
        figures.append(FigureFile(name, f"{configuration} ({seed}trial `{trial_id}`): {pairs} pairs of test images (rows; "
                                  f"the first test image of class 2p to that of class 2p + 1), {steps} steps from t = 0 to 1 "
                                  "(columns), decoded after interpolating the whole latent (left), only its first, "
                                  "contrastive half (middle), only its second half (right)."))
        change = [f"{np.abs(images[m][:, -1] - images[m][:, 0]).mean():.4f}" for m, _ in INTERPOLATION_MODES]
        movement.append([configuration, *change])
    paragraphs = [
        "The paper reads these figures as: the contrastive half carries little of what the decoder draws (images stay "
        "close to the start image when only it moves), the other half most of it. The table measures that: the mean "
        "absolute pixel difference (pixels in [0, 1]) between the last and the first image of each interpolation."
    ]
    table = Table("Mean |x(t=1) - x(t=0)| per interpolation, averaged over pairs and pixels",
                  ["configuration", *(label for _, label in INTERPOLATION_MODES)], movement)
    return [Section(title, paragraphs, figures, [table])]


def _images(rows: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """``{mode: (pairs, steps, C, H, W)}`` from one trial's rows; None if they are incomplete."""
    shape_rows = rows[rows["metric"] == "grid_shape"].sort_values("index")
    if len(shape_rows) != 5:
        return None
    shape = tuple(int(v) for v in shape_rows["value"])
    images = {}
    for mode, _ in INTERPOLATION_MODES:
        values = rows[rows["metric"] == mode].sort_values("index")["value"].to_numpy(dtype=float)
        if len(values) != np.prod(shape):
            return None
        images[mode] = values.reshape(shape)
    return images


def _mosaic(images: np.ndarray) -> np.ndarray:
    """(pairs, steps, C, H, W) -> one (rows, columns[, 3]) picture with 1-pixel mid-grey gaps."""
    pairs, steps, channels, height, width = images.shape
    canvas = np.full((pairs * (height + 1) - 1, steps * (width + 1) - 1, channels), 0.5)
    for p in range(pairs):
        for s in range(steps):
            canvas[p * (height + 1): p * (height + 1) + height, s * (width + 1): s * (width + 1) + width] = images[p, s].transpose(1, 2, 0)
    return canvas[..., 0] if channels == 1 else canvas


def _interpolation_figure(images: dict[str, np.ndarray], title: str) -> Figure:
    mosaics = {mode: _mosaic(np.clip(images[mode], 0, 1)) for mode, _ in INTERPOLATION_MODES}
    height, width = mosaics["whole"].shape[:2]
    panel_width = 4.2
    figure = Figure(figsize=(3 * panel_width + 0.4, panel_width * height / width + 0.9), layout="constrained")
    for panel, (mode, label) in zip(figure.subplots(1, 3), INTERPOLATION_MODES):
        mosaic = mosaics[mode]
        panel.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        panel.set_title(label, fontsize="medium")
        panel.set_xticks([])
        panel.set_yticks([])
    figure.suptitle(re.sub(r"\s+", " ", title))
    return figure
