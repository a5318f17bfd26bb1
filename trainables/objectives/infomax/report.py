"""Report ``conditioning``: the invertibility panels of the ``infomax`` slice (Tschannen et al. 2020).

Reads ``epochs.parquet`` and ``final.parquet`` of an ``infomax`` sweep and draws
``conditioning.png``, three rows of panels against training steps:

1. the MI estimate on the test split, ``test/mi_bits`` (mean over seeds, band +-1 sample std),
   with log2 of the estimate's batch size dotted where InfoNCE's cap lies;
2. the linear-probe test accuracy of g1's representation, ``probe/test_acc`` (same);
3. the log condition number of g1's Jacobian over the fixed probe batch: the median
   (``conditioning/log_condition_number_p50``, mean over seeds) with the 25-75 and the 5-95
   percentile bands (each percentile averaged over seeds).

The colour is the critic (or, without a ``critic`` axis, the last swept axis); there is one
column per combination of the other swept axes. The x axis is ``train/steps`` (optimiser steps,
epoch x steps per epoch) when the sweep logged it, else the epoch. A table gives, per
configuration, each quantity after the last epoch as mean ± std (n seeds), and the median log
condition number after the first epoch, to show the change. Only TERMINATED trials count.

Driver-side: imports no torch (the metric names come from the slice's torch-free config).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, config_column, counts_sentence, error_table, format_mean_std, format_value,
                                       summarize_over_seeds)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import save_figure
from trainables.objectives.infomax.config import CONDITION_PERCENTILES, condition_metric

TITLE = "Invertibility: MI estimate, downstream accuracy and Jacobian conditioning"
FILE_NAME = "conditioning.png"
MI = "test/mi_bits"
ACCURACY = "probe/test_acc"
STEPS = "train/steps"
MEDIAN = condition_metric(50)


@register_report("conditioning")
def conditioning(results: SweepResults, out_dir: Path) -> list[Section]:
    """The invertibility figure and table; writes ``out_dir/conditioning.png`` when there is data."""
    errors = error_table(results)
    tables = [errors] if errors else []
    needed = [MI, ACCURACY, MEDIAN]
    missing = [c for c in needed if c not in results.epochs.columns or c not in results.final.columns]
    if missing:
        names = ", ".join(f"`{c}`" for c in missing)
        return [Section(TITLE, [f"The results have no {names} column (not an `infomax` sweep?), so there is no invertibility report."], tables=tables)]
    finished_ids = set(results.finished["trial_id"])
    epochs = results.epochs[results.epochs["trial_id"].isin(finished_ids)]
    if epochs.empty:
        return [Section(TITLE, ["No trial finished, so there is no invertibility report.", counts_sentence(results)], tables=tables)]

    axes = list(results.info.axes)
    colour_axis = "critic" if "critic" in axes else (axes[-1] if axes else None)
    panel_axes = [a for a in axes if a != colour_axis]
    x_column = STEPS if STEPS in epochs.columns and epochs[STEPS].notna().any() else "epoch"
    cap = _batch_cap_bits(results)
    figure = _figure(results, epochs, colour_axis, panel_axes, x_column, cap)
    save_figure(figure, out_dir / FILE_NAME)

    x_words = "optimiser steps (epoch × steps per epoch)" if x_column == STEPS else "epochs"
    colour_words = f"colour: `{colour_axis}`" if colour_axis else "one line"
    columns_words = ", ".join(f"`{a}`" for a in panel_axes)
    paragraphs = [
        "Tschannen et al. (2020) maximise a lower bound on the MI between the encoded top and bottom halves of each image. "
        "With an invertible encoder the true MI never changes, yet the estimate climbs, the downstream accuracy moves "
        "independently of it, and the encoder's Jacobian becomes ill-conditioned (hard to invert): the bound, not the MI, "
        "shapes the representation.",
        f"Rows: the test MI estimate `{MI}`; the linear-probe test accuracy of g1's representation `{ACCURACY}` "
        "(MinMaxScaler + logistic regression); the log condition number log(σ_max/σ_min) of g1's Jacobian at a fixed "
        "batch of test inputs — line: median, dark band: 25–75th, light band: 5–95th percentile over the batch. "
        f"Lines and percentiles are means over seeds (MI and accuracy bands: ± 1 sample std). x axis: {x_words}; "
        f"{colour_words}" + (f"; one column per combination of {columns_words}." if panel_axes else "."),
        counts_sentence(results),
    ]
    if cap is not None:
        paragraphs.append(f"Dotted: log2 B = {cap:.3g} bits for the test batch size B, the most InfoNCE can ever report.")
    caption = f"{results.info.name}: MI estimate, probe accuracy and log condition number of g1's Jacobian against {x_words}."
    return [Section(TITLE, paragraphs, [FigureFile(FILE_NAME, caption)], [_table(results, epochs), *tables])]


def _batch_cap_bits(results: SweepResults) -> float | None:
    column = config_column("mi_batch_size")
    if column not in results.final.columns:
        return None
    sizes = results.final[column].dropna().unique()
    return math.log2(float(sizes[0])) if len(sizes) == 1 and float(sizes[0]) >= 2 else None


def _figure(results, epochs, colour_axis, panel_axes, x_column, cap) -> Figure:
    colour_values = sorted(epochs[config_column(colour_axis)].dropna().unique(), key=str) if colour_axis else [None]
    cmap = matplotlib.colormaps["tab10"]
    colour_of = {value: cmap(i % 10) for i, value in enumerate(colour_values)}
    if panel_axes:
        groups = list(epochs.groupby([config_column(a) for a in panel_axes], dropna=False, sort=True))
    else:
        groups = [((), epochs)]
    columns = len(groups)
    figure = Figure(figsize=(max(3.6 * columns + 1.8, 10.0), 9.0), layout="constrained")  # room for title and legend
    panels = figure.subplots(3, columns, squeeze=False, sharex="col")
    metric_columns = [MI, ACCURACY, *(condition_metric(p) for p in CONDITION_PERCENTILES)]
    metric_columns = [c for c in metric_columns if c in epochs.columns]
    line_range = [math.inf, -math.inf] if cap is None else [0.0, cap]  # of the MI means (and InfoNCE's cap)
    for column, (key, group) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        for value in colour_values:
            lines = group if value is None else group[group[config_column(colour_axis)] == value]
            if lines.empty:
                continue
            colour = colour_of[value]
            per_epoch = lines.groupby("epoch")
            mean = per_epoch[metric_columns + ([x_column] if x_column != "epoch" else [])].mean()
            std = per_epoch[[MI, ACCURACY]].std()
            x = mean[x_column].to_numpy() if x_column != "epoch" else mean.index.to_numpy(dtype=float)
            for row, metric in ((0, MI), (1, ACCURACY)):
                valid = mean[metric].notna().to_numpy()
                m, s = mean[metric].to_numpy()[valid], np.nan_to_num(std[metric].to_numpy()[valid])
                panels[row, column].plot(x[valid], m, color=colour, linewidth=1.4)
                if row == 0 and len(m):
                    line_range[0], line_range[1] = min(line_range[0], float(m.min())), max(line_range[1], float(m.max()))
                panels[row, column].fill_between(x[valid], m - s, m + s, color=colour, alpha=0.18, linewidth=0)
            if MEDIAN in mean.columns:
                valid = mean[MEDIAN].notna().to_numpy()
                panel = panels[2, column]
                panel.plot(x[valid], mean[MEDIAN].to_numpy()[valid], color=colour, linewidth=1.4, marker=".", markersize=3)
                for low, high, alpha in ((5, 95, 0.10), (25, 75, 0.25)):
                    lo, hi = condition_metric(low), condition_metric(high)
                    if lo in mean.columns and hi in mean.columns:
                        panel.fill_between(x[valid], mean[lo].to_numpy()[valid], mean[hi].to_numpy()[valid], color=colour,
                                           alpha=alpha, linewidth=0)
        title = ", ".join(f"{a}={format_value(v)}" for a, v in zip(panel_axes, key)) or "all trials"
        panels[0, column].set_title(title, fontsize="medium")
        estimator = dict(zip(panel_axes, key)).get("estimator", "infonce")
        if cap is not None and estimator == "infonce":  # NWJ has no such cap
            panels[0, column].axhline(cap, color="grey", linestyle=":", linewidth=1.0)
        panels[2, column].set_xlabel("optimiser steps" if x_column == STEPS else "epoch")
    for row, label in enumerate(("test MI estimate (bits)", "linear-probe test accuracy", "log condition number of g1's Jacobian")):
        panels[row, 0].set_ylabel(label)
        for panel in panels[row]:
            panel.grid(True, alpha=0.3)
    for row in range(3):  # one y range per row, so columns compare at a glance
        limits = [p.get_ylim() for p in panels[row]]
        low, high = min(l[0] for l in limits), max(l[1] for l in limits)
        if row == 0 and line_range[0] <= line_range[1]:
            # the MI row follows the mean lines: one seed's NWJ outlier would otherwise flatten every panel
            margin = 0.08 * max(line_range[1] - line_range[0], 1e-6)
            low, high = line_range[0] - margin, line_range[1] + margin
        for panel in panels[row]:
            panel.set_ylim(low, high)
    # the lines as drawn (rows 1-2 have no markers); the percentile bands are areas, so patches, shaded like them
    handles = [Line2D([], [], color=colour_of[v], linewidth=1.4, label=f"{colour_axis}={format_value(v)}") for v in colour_values if v is not None]
    handles += [Patch(facecolor="grey", alpha=1 - 0.90 * 0.75, linewidth=0, label="log cond: 25–75th pct"),  # both bands there
                Patch(facecolor="grey", alpha=0.10, linewidth=0, label="log cond: 5–95th pct")]
    if cap is not None:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="log2 B (InfoNCE cap)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize="small")
    figure.suptitle(f"{results.info.name}: MI estimate, downstream accuracy and Jacobian conditioning along training\n"
                    "means over seeds (bands: ± 1 std for MI and accuracy; percentiles over the probe batch for log cond)",
                    fontsize="medium")
    return figure


def _table(results: SweepResults, epochs: pd.DataFrame) -> Table:
    axes = list(results.info.axes)
    keys = [config_column(a) for a in axes]
    finished = results.finished
    first_epoch = int(epochs["epoch"].min())
    columns = [(MI, finished, "test MI (bits)"), (ACCURACY, finished, "probe test acc"),
               (MEDIAN, finished, "log cond p50 (last)"),
               (MEDIAN, epochs[epochs["epoch"] == first_epoch], f"log cond p50 (epoch {first_epoch})")]
    table = None
    for position, (metric, frame, _) in enumerate(columns):
        summary = summarize_over_seeds(frame, metric, axes)
        summary[f"cell{position}"] = [format_mean_std(m, s, int(n)) for m, s, n in zip(summary["mean"], summary["std"], summary["n"])]
        summary = summary.drop(columns=["mean", "std", "n"])
        table = summary if table is None else (table.merge(summary, on=keys, how="left") if keys else pd.concat([table, summary], axis=1))
    band = [condition_metric(5), condition_metric(95)]
    if all(c in finished.columns for c in band):
        low, high = (summarize_over_seeds(finished, c, axes).rename(columns={"mean": c})[[*keys, c]] for c in band)
        merged = low.merge(high, on=keys) if keys else pd.concat([low, high], axis=1)
        merged["band"] = [f"{a:.3g} – {b:.3g}" for a, b in zip(merged[band[0]], merged[band[1]])]
        table = table.merge(merged[[*keys, "band"]], on=keys, how="left") if keys else pd.concat([table, merged[["band"]]], axis=1)
    cells = [f"cell{i}" for i in range(len(columns))]
    header = [*axes, *(name for _, _, name in columns)]
    if "band" in table.columns:
        cells.insert(3, "band")
        header.insert(len(axes) + 3, "log cond p5 – p95 (last, mean over seeds)")
    rows = [[*(format_value(row[k]) for k in keys), *(str(row[c]) if isinstance(row[c], str) else "–" for c in cells)]
            for _, row in table.iterrows()]
    caption = ("Per configuration after the last epoch (and the median log cond after the first): mean ± sample std "
               "(number of seeds); log cond = log(σ_max/σ_min) of g1's Jacobian at the fixed test batch")
    return Table(caption, header, rows)
