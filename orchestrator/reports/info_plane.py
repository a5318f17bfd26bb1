"""Report ``info_plane``: each trial's path through the information plane (Kirsch, Lyle and Gal, Fig. 2).

Reads ``infoplane/izx_bits`` (I(X; Z), "preserved information") and ``infoplane/hyz_bits`` (an
upper bound on H(Y | Z), "residual information") from ``epochs.parquet``, as the harness logs
them every ``infoplane_every`` epochs (trainables/evaluation/info_plane.py,
docs/information_plane.md). ``info_plane.png`` draws one trajectory per trial, coloured by beta,
faint at its first measured epoch and opaque at its last (marked with a dot); one panel per
configuration of the swept axes other than beta, with a dotted vertical line at the median of
``infoplane/izx_floor_bits``, the k-NN reading of pure noise of the same size (I(X; Z) = 0; the
estimator's bias in high dimensions puts it above 0). When the trials logged
``infoplane/knn_bias_bits`` (the estimator's bias on a Gaussian of the measured Z's own N, d and
covariance), each trial's last point also gets a hollow marker at I(X; Z) - bias, joined to the dot
by a dashed line: the k-NN reading and the reading corrected for the bias a Gaussian of that
covariance would have. When the trials also logged their own rate on
the same subset (``infoplane/rate_bits``: VIB's KL bound, DIB's code length, knn_ib's k-NN H[Z]),
``info_plane_rate.png`` draws the same paths with that rate on the x axis. A table gives the
last measured epoch's values per beta, mean ± sample std over the seeds of finished trials, with
``infoplane/knn_bias_bits`` and the corrected ``izx_bits - knn_bias_bits`` beside I(X; Z).

A Gaussian encoder (vib, ceb) also logs Poole et al.'s bounds on the same I(X; Z),
``infoplane/izx_lower_bits`` (InfoNCE, at most log2 N) and ``infoplane/izx_upper_bits``
(leave-one-out), from its own density with no estimator bias (trainables/gaussian_mi.py). The
figure draws them as a bracket through the last point, the table gives both, and the report names
every configuration whose corrected k-NN reading lies more than :data:`OUTSIDE_BITS` outside
them: there the Gaussian bias correction misreads that latent, and the bounds are the numbers to
read.

``orchestrator.reports.build_reports`` adds this report to any sweep whose epochs carry the
columns, whether or not the sweep names it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, beta_label, config_column, counts_sentence, format_mean_std, format_value,
                                       summarize_over_seeds, sweep_betas, with_configuration)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import add_beta_key, beta_colors, panel_grid, save_figure

TITLE = "Information plane"
IZX, HYZ, RATE, FLOOR = "infoplane/izx_bits", "infoplane/hyz_bits", "infoplane/rate_bits", "infoplane/izx_floor_bits"
BIAS = "infoplane/knn_bias_bits"
CORRECTED = "izx_bits - knn_bias_bits"  # a column the report derives, I(X;Z) corrected for the Gaussian bias
LOWER, UPPER = "infoplane/izx_lower_bits", "infoplane/izx_upper_bits"  # Poole et al.'s bounds (Gaussian encoders)
OUTSIDE_BITS = 1.0  # a corrected reading this far outside the bounds is flagged: a batch's bounds spread by < 0.5 bits
FILE_NAME, RATE_FILE_NAME = "info_plane.png", "info_plane_rate.png"
FAINTEST = 0.15  # alpha of a trajectory's first epoch; its last is opaque
TRAJECTORY = {"linewidth": 1.5, "linestyle": "-"}  # and a dot (LAST_POINT) at its end: a legend entry shows both
LAST_POINT = {"marker": "o", "markersize": 5}


def has_info_plane(results: SweepResults) -> bool:
    """Whether some epoch of the sweep logged both information-plane coordinates."""
    epochs = results.epochs
    return IZX in epochs.columns and HYZ in epochs.columns and bool((epochs[IZX].notna() & epochs[HYZ].notna()).any())


@register_report("info_plane")
def info_plane(results: SweepResults, out_dir: Path) -> list[Section]:
    """``info_plane.png`` (and ``info_plane_rate.png``) and the last epoch's table."""
    if not has_info_plane(results):
        return [Section(TITLE, [f"No trial logged `{IZX}` and `{HYZ}` (set `infoplane_every` > 0), so there is no "
                                "information plane."])]
    points = _points(results)
    paragraphs = [
        "Each trial's representation on a fixed held-out subset of the test set, measured after every "
        "`infoplane_every` epochs: I(X;Z) = h(Z) - h(Z|X) with h(Z) the k-NN (Kozachenko-Leonenko) estimate "
        "and H(Y|Z) bounded above by the held-out cross-entropy of a logistic regression on Z "
        "(docs/information_plane.md). One line per trial, coloured by beta, faint at its first measured epoch "
        "and opaque at its last (dot); lower right is compressed but uninformative, lower left is the goal.",
        counts_sentence(results),
    ]
    if _has(points, BIAS):
        paragraphs.append(
            f"The k-NN estimate is biased upwards in high dimensions. `{BIAS}` is its bias measured on a Gaussian "
            "with the measured Z's own N, d and sample covariance (the estimate there minus the Gaussian's exact "
            "entropy): each trial's last point has a hollow marker at I(X;Z) - bias, joined to the dot by a dashed "
            f"line, and the table gives the bias and `{CORRECTED}`. The correction is exact only for Gaussian Z; it "
            "is an estimate, not a bound, and it overstates the bias when d is a sizeable fraction of N "
            "(docs/information_plane.md, \"Reading k-NN numbers\").")
    if _has(points, LOWER):
        paragraphs.append(
            f"The Gaussian encoders' own density bounds the same I(X;Z) with no estimator: `{LOWER}` is InfoNCE with "
            f"log p(z|x) as its critic and `{UPPER}` the leave-one-out bound (Poole et al. 2019), drawn as a bracket "
            "through each trial's last point. The lower bound cannot exceed log2 N (N the measured examples): near "
            "that cap it says only that I(X;Z) is at least that much. The upper bound is tight while the posteriors "
            "overlap and loose once I(X;Z) is above log2 N.")
    figures = [_figure_file(results, points, IZX, out_dir / FILE_NAME,
                            "I(X;Z), bits (k-NN h(Z) - h(Z|X))", "I(X;Z) by the k-NN ruler")]
    if RATE in points.columns and points[RATE].notna().any():
        figures.append(_figure_file(results, points, RATE, out_dir / RATE_FILE_NAME,
                                    "the objective's own rate, bits per example", "the objective's own rate"))
        paragraphs.append(f"`{RATE_FILE_NAME}` draws the same paths against the rate each objective reports itself, "
                          "on the same subset (VIB: its KL upper bound; DIB: the entropy model's code length; "
                          "knn_ib: its k-NN H[Z]).")
    tables, outside = _tables(results, points)
    if outside:
        paragraphs.append(
            f"**The bias-corrected k-NN reading lies outside the bounds** (by more than {OUTSIDE_BITS:g} bit, the "
            f"seeds' mean of `{CORRECTED}` against the means of `{LOWER}` and `{UPPER}`) for " + "; ".join(outside)
            + ". There the Gaussian of Z's covariance misreads the estimator's bias on this latent (a mixture of "
            "the encoder's posteriors, not a Gaussian): read the bounds, not the corrected value.")
    return [Section(TITLE, paragraphs, figures, tables)]


def _has(frame: pd.DataFrame, metric: str) -> bool:
    """Whether some row of ``frame`` has ``metric``."""
    return metric in frame.columns and bool(frame[metric].notna().any())


def _points(results: SweepResults) -> pd.DataFrame:
    """Epoch rows with both coordinates, plus ``beta`` (float, NaN without a beta axis) and ``configuration``."""
    epochs = results.epochs
    points = with_configuration(results, epochs[epochs[IZX].notna() & epochs[HYZ].notna()])
    return points.sort_values(["trial_id", "epoch"])


def _figure_file(results: SweepResults, points: pd.DataFrame, x_metric: str, path: Path, x_label: str, what: str) -> FigureFile:
    configurations = sorted(points["configuration"].unique())
    color_of = beta_colors(sweep_betas(results))  # the sweep's betas: the colours of every other figure
    betas = sorted(points["beta"].dropna().unique().tolist()) or [math.nan]
    figure, panels = panel_grid(len(configurations), width=5.0, height=4.0)
    for panel, configuration in zip(panels, configurations):
        brackets = []  # (lower, upper, y, colour) of Poole et al.'s bounds, drawn once the axis is scaled
        for _, trial in points[points["configuration"] == configuration].groupby("trial_id", sort=True):
            trial = trial.dropna(subset=[x_metric])
            if trial.empty:
                continue
            beta = float(trial["beta"].iloc[0])
            color = color_of(math.nan if math.isnan(beta) else beta)
            x, y = trial[x_metric].to_numpy(float), trial[HYZ].to_numpy(float)
            alphas = np.linspace(FAINTEST, 1.0, max(len(x) - 1, 1))
            segments = np.stack([np.column_stack([x[:-1], y[:-1]]), np.column_stack([x[1:], y[1:]])], axis=1)
            if len(segments):
                panel.add_collection(LineCollection(segments, colors=[to_rgba(color, a) for a in alphas],
                                                    linewidths=TRAJECTORY["linewidth"], linestyles=TRAJECTORY["linestyle"]))
            if x_metric == IZX and _has(trial, BIAS) and np.isfinite(trial[BIAS].iloc[-1]):
                # under the dot (zorder), a size larger: a small bias leaves a ring around the dot, not a hidden dot
                corrected = x[-1] - float(trial[BIAS].iloc[-1])
                panel.plot([x[-1], corrected], [y[-1], y[-1]], color=color, linestyle="--", linewidth=0.9, alpha=0.7, zorder=2)
                panel.plot([corrected], y[-1:], marker="o", markersize=7, markerfacecolor="white", markeredgecolor=color,
                           markeredgewidth=1.4, linestyle="none", zorder=2.5)
            if x_metric == IZX and _has(trial, LOWER) and np.isfinite(trial[[LOWER, UPPER]].iloc[-1]).all():
                brackets.append((*trial[[LOWER, UPPER]].iloc[-1].to_numpy(float), y[-1], color))
            panel.plot(x[-1:], y[-1:], color=color, linestyle="none", zorder=3, **LAST_POINT)
        floors = points.loc[points["configuration"] == configuration, FLOOR].dropna() if FLOOR in points else []
        if x_metric == IZX and len(floors):
            panel.axvline(float(np.median(floors)), color="grey", linestyle=":", linewidth=1.2)
            panel.annotate("k-NN reading of pure noise (I = 0)", (float(np.median(floors)), 1.0), xycoords=("data", "axes fraction"),
                           xytext=(3, -3), textcoords="offset points", fontsize="x-small", color="grey", va="top", rotation=90)
        panel.autoscale()
        _draw_brackets(panel, brackets)
        panel.set_title(configuration, fontsize="medium")
        panel.set_xlabel(x_label)
        panel.set_ylabel("H(Y|Z) upper bound, bits (held-out CE)")
        panel.grid(True, alpha=0.3)
    hollow = "\nhollow = minus the k-NN bias (Gaussian of Z's covariance)" if x_metric == IZX and _has(points, BIAS) else ""
    hollow += "\nbracket = Poole et al.'s bounds on I(X;Z)" if x_metric == IZX and _has(points, LOWER) else ""
    figure.suptitle(f"{results.info.name}: information plane\none line per trial, faint = early epochs, dot = last{hollow}")
    add_beta_key(figure, panels, color_of, betas, [beta_label(beta, results.info.objective or "") for beta in betas],
                 {**TRAJECTORY, **LAST_POINT})
    save_figure(figure, path)
    caption = (f"{results.info.name}: H(Y|Z) (upper bound) against {what}, one trajectory per trial coloured by beta, "
               "transparency by epoch (opaque = last, marked)"
               + ("; dotted: the k-NN reading of pure noise of the same size, where I(X;Z) = 0" if x_metric == IZX else "")
               + ("; hollow: the last point minus the k-NN bias on a Gaussian of Z's covariance" if x_metric == IZX and _has(points, BIAS) else "")
               + ("; bracket: the InfoNCE lower and leave-one-out upper bounds from the encoder's own density "
                  "(an arrow: the upper bound lies past the panel's edge; the table has it)"
                  if x_metric == IZX and _has(points, LOWER) else "")
               + ".")
    return FigureFile(path.name, caption)


def _draw_brackets(panel, brackets: list[tuple[float, float, float, str]]) -> None:
    """Each bracket [lower, upper] at its last point's height, on the x range of the k-NN readings
    widened to every lower bound: an upper bound past the right edge (the leave-one-out bound read
    5.9e8 bits on vib_digits' 2-d latent, whose posteriors are narrow) is cut there and ends in an arrow."""
    if not brackets:
        return
    left, right = panel.get_xlim()
    left, right = min(left, *(b[0] for b in brackets)), max(right, *(b[0] for b in brackets))
    right_edge = right + 0.03 * (right - left)
    for lower, upper, height, color in brackets:
        end = min(upper, right_edge)
        panel.plot([lower, end], [height, height], color=color, linewidth=4, alpha=0.35, solid_capstyle="butt", zorder=1.5)
        panel.plot([lower], [height], color=color, marker="|", markersize=9, linestyle="none", zorder=1.5)
        panel.plot([end], [height], color=color, marker="|" if end == upper else ">", markersize=9 if end == upper else 6,
                   linestyle="none", zorder=1.5)
    panel.set_xlim(left - 0.03 * (right - left), right_edge + 0.02 * (right - left))


def _tables(results: SweepResults, points: pd.DataFrame) -> tuple[list[Table], list[str]]:
    """The last epoch's table, and the configurations whose corrected reading lies outside the bounds."""
    finished = set(results.finished["trial_id"])
    last = points[points["trial_id"].isin(finished)].groupby("trial_id", sort=False).tail(1)
    if last.empty:
        return [], []
    axes = [axis for axis in results.info.axes if axis != "beta"] + (["beta"] if "beta" in results.info.axes else [])
    if _has(last, BIAS):
        last = last.assign(**{CORRECTED: last[IZX] - last[BIAS]})
    metrics = [m for m in (IZX, FLOOR, BIAS, CORRECTED, LOWER, UPPER, HYZ, RATE) if _has(last, m)]
    summaries = {m: summarize_over_seeds(last, m, axes) for m in metrics}
    rows, outside = [], []
    for index, row in summaries[IZX].iterrows():  # the same groups, in the same order, for every metric
        labels = [format_value(row[config_column(axis)]) for axis in axes if axis != "beta"]
        beta = beta_label(float(row[config_column("beta")]), results.info.objective or "") if "beta" in axes else "all trials"
        cells = [format_mean_std(summaries[m].loc[index, "mean"], summaries[m].loc[index, "std"], int(summaries[m].loc[index, "n"]))
                 for m in metrics]
        rows.append([*labels, beta, *cells])
        if {CORRECTED, LOWER, UPPER} <= set(metrics):
            corrected, lower, upper = (float(summaries[m].loc[index, "mean"]) for m in (CORRECTED, LOWER, UPPER))
            if corrected < lower - OUTSIDE_BITS or corrected > upper + OUTSIDE_BITS:
                where = ", ".join([*(f"{axis} {label}" for axis, label in zip([a for a in axes if a != "beta"], labels)),
                                   beta])
                outside.append(f"{where}: {corrected:.4g} bits against [{lower:.4g}, {upper:.4g}]")
    header = [*(axis for axis in axes if axis != "beta"), "beta", *(f"`{m}`" for m in metrics)]
    table = Table("The last measured epoch of each finished trial: mean ± sample std over seeds (n)", header, rows)
    return [table], outside
