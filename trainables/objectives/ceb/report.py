"""Report ``ceb_vs_vib``: CEB's clean and FGSM accuracy against its rate, beside VIB's at matched rates.

Figure ``ceb_vs_vib.png``: test accuracy (left) and FGSM accuracy at the sweep's smallest epsilon (right) against the
final ``test/rate_bits`` of each finished trial, mean over seeds per beta, one line per configuration of the axes
other than beta, joined in beta order. A table lists the same numbers as "mean ± std (n)".

The VIB side is the newest finished run of the matching VIB sweep (``ceb_digits`` -> ``vib_digits``; the two share
encoder, optimiser, epochs and attacks) in the same results root, the parent of this run's directory: a directory
``<root>/vib_digits_<start time>`` whose ``sweep.json`` says ``finished``. Why rates and not betas: the two
objectives price different terms, so equal betas are not comparable, while a rate in bits is. CEB's rate bounds
the residual I(X;Z|Y), VIB's the whole I(X;Z); for one representation they differ by I(Y;Z) <= log2(classes)
(3.3 bits on ten classes), which the section's text says. Driver-side: pandas, matplotlib and orchestrator only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from orchestrator.reports import FigureFile, Section, SweepResults, Table, load_results, register_report
from orchestrator.reports.data import format_mean_std, format_value, with_configuration
from orchestrator.reports.figures import configuration_color, legend_below, save_figure
from orchestrator.run_record import latest_finished_run

TITLE = "CEB vs VIB at matched rates"
FIGURE = "ceb_vs_vib.png"
MATCHED_VIB = {"ceb_digits": "vib_digits"}  # CEB sweep -> the VIB sweep with the same data, encoder and attacks
STYLE = {"CEB": {"marker": "o", "linestyle": "-"}, "VIB": {"marker": "s", "linestyle": "--"}}
RATE, ACC, FGSM = "test/rate_bits", "test/acc", "fgsm"


@register_report("ceb_vs_vib")
def ceb_vs_vib(results: SweepResults, out_dir: Path) -> list[Section]:
    """Accuracy and FGSM accuracy against the rate for CEB, and for the matching VIB run when there is one."""
    if RATE not in results.final.columns or ACC not in results.final.columns:
        return [Section(TITLE, [f"`final.parquet` has no `{RATE}` or `{ACC}` column, so there is nothing to compare."])]
    paragraphs = [
        "Each point is one beta: the mean over seeds of a finished trial's final test rate (bits per example) and "
        "its test accuracy, and its accuracy under FGSM at the sweep's smallest epsilon. CEB's rate bounds the "
        "residual information I(X;Z|Y), VIB's the whole I(X;Z): for one representation the two differ by "
        "I(Y;Z), at most log2 of the number of classes (3.3 bits for ten)."]
    frames = [_points(results, "CEB")]
    vib_sweep = MATCHED_VIB.get(results.info.name)
    if vib_sweep is None:
        paragraphs.append(f"No VIB sweep matches `{results.info.name}` (only `ceb_digits` has one, `vib_digits`), "
                          "so only CEB is shown.")
    else:
        run = latest_finished_run(results.directory.parent, vib_sweep)
        if run is None:
            paragraphs.append(f"No finished `{vib_sweep}` run under `{results.directory.parent}`, so only CEB is "
                              f"shown; run `python -m orchestrator.sweep {vib_sweep}` with the same `--storage` and "
                              "rebuild this report.")
        else:
            try:
                frames.append(_points(load_results(run), "VIB"))
                paragraphs.append(f"VIB: the finished run `{run.name}` beside this one.")
            except (FileNotFoundError, ValueError) as error:
                paragraphs.append(f"The finished `{vib_sweep}` run `{run.name}` could not be read ({error}), so only "
                                  "CEB is shown.")
    points = pd.concat(frames, ignore_index=True)
    points = points.dropna(subset=["rate", "acc"], how="all")
    if points.empty:
        paragraphs.append("No finished trial reported a final rate and accuracy, so there is no figure.")
        return [Section(TITLE, paragraphs)]
    summary = _summarize(points)
    figure = _figure(summary)
    save_figure(figure, out_dir / FIGURE)
    caption = (f"{results.info.name}: final test accuracy and FGSM accuracy against the final test rate; CEB solid "
               "circles, VIB dashed squares, one colour per configuration, points joined in beta order.")
    epsilons = sorted({float(e) for e in points["epsilon"].dropna().unique()})
    if len(epsilons) > 1:
        paragraphs.append("The two sweeps' smallest FGSM epsilons differ (" + ", ".join(f"{e:g}" for e in epsilons)
                          + "); each panel point uses its own sweep's.")
    elif not epsilons:
        paragraphs.append("No finished trial has FGSM rows in `evaluations.parquet`, so the right panel is empty.")
    return [Section(TITLE, paragraphs, [FigureFile(FIGURE, caption)], [_table(summary)])]


def _points(results: SweepResults, objective: str) -> pd.DataFrame:
    """One row per finished trial: objective, configuration, beta, rate, acc, fgsm (at the smallest epsilon), epsilon."""
    finished = with_configuration(results, results.finished)
    frame = pd.DataFrame({
        "trial_id": finished["trial_id"].to_numpy(),
        "objective": objective,
        "configuration": finished["configuration"].to_numpy(),
        "beta": finished["beta"].to_numpy(),
        "rate": finished[RATE].to_numpy() if RATE in finished.columns else math.nan,
        "acc": finished[ACC].to_numpy() if ACC in finished.columns else math.nan,
    })
    rows = results.finished_evaluations
    rows = rows[(rows["evaluation"] == FGSM) & (rows["metric"] == "acc")].dropna(subset=["value", "epsilon"])
    if rows.empty:
        return frame.assign(fgsm=math.nan, epsilon=math.nan)
    epsilon = float(rows["epsilon"].min())
    fgsm = rows[rows["epsilon"] == epsilon].groupby("trial_id")["value"].mean()
    return frame.assign(fgsm=frame["trial_id"].map(fgsm).astype("float64"), epsilon=epsilon)


def _summarize(points: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1) and count over seeds of rate, acc and fgsm per objective, configuration and beta."""
    grouped = points.groupby(["objective", "configuration", "beta"], dropna=False, sort=True)
    summary = grouped[["rate", "acc", "fgsm"]].agg(["mean", "std", "count"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary["epsilon"] = grouped["epsilon"].first()
    return summary.reset_index()


def _figure(summary: pd.DataFrame) -> Figure:
    configurations = list(dict.fromkeys(summary["configuration"]))
    figure = Figure(figsize=(10.5, 4.8), layout="constrained")
    panels = figure.subplots(1, 2, sharex=True)
    rates = summary["rate_mean"].dropna()
    handles = []
    for (objective, configuration), line in summary.groupby(["objective", "configuration"], sort=True):
        line = line.sort_values("beta")
        color = configuration_color(configurations.index(configuration))
        style = {**STYLE[objective], "color": color, "markersize": 4, "linewidth": 1.3}
        for panel, metric in zip(panels, ("acc", "fgsm")):
            panel.plot(line["rate_mean"], 100 * line[f"{metric}_mean"], **style)
        handles.append(Line2D([], [], label=f"{objective}, {configuration}", **style))
    positive = bool((rates > 0).all()) and not rates.empty
    epsilon = summary["epsilon"].dropna()
    titles = ("clean test accuracy", "FGSM accuracy" + (f", eps {epsilon.max():g}" if not epsilon.empty else ""))
    for panel, title in zip(panels, titles):
        panel.set_xscale("log" if positive else "symlog")
        panel.set_xlabel("final test rate (bits per example" + (", log scale)" if positive else ", symlog scale)"))
        panel.set_ylabel("accuracy (%)")
        panel.set_title(title)
        panel.grid(True, alpha=0.3)
    legend_below(figure, handles)
    return figure


def _table(summary: pd.DataFrame) -> Table:
    def cell(row, metric: str, percent: bool = False) -> str:
        return format_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], int(row[f"{metric}_count"]),
                               scale=100.0 if percent else 1.0, decimals=1 if percent else None)

    epsilon = summary["epsilon"].dropna()
    fgsm = "FGSM acc (%)" + (f", eps {epsilon.max():g}" if not epsilon.empty else "")
    rows = [[row["objective"], row["configuration"], format_value(row["beta"]), cell(row, "rate"),
             cell(row, "acc", True), cell(row, "fgsm", True)] for _, row in summary.iterrows()]
    return Table("Final test rate and accuracies per beta: mean ± sample std over seeds (n finished trials)",
                 ["objective", "configuration", "beta", "test rate (bits)", "test acc (%)", fgsm], rows)

