"""Report ``zoo``: every objective of an IB zoo sweep on one information-plane ruler.

An IB zoo sweep trains several objectives (the deterministic cross-entropy baseline ``ce``, ``dib``, ``vib``,
``knn_ib``, ``ceb``) on one backbone, one data pipeline and one robustness suite, each sweeping its own compression
weight ``beta`` over seeds; ``config/objective`` names each trial's objective and ``config/beta`` is NaN for ``ce``,
which has none. The objectives' own rates (``test/rate_bits``: VIB's KL bound, DIB's code length, knn_ib's k-NN
H[Z], ...) are each in their own units of account and not comparable, so every trial is put on one common ruler:
``infoplane/izx_bits``, I(X;Z) = h(Z) - h(Z|X) in bits by one k-NN (Kozachenko-Leonenko) estimator on one fixed
held-out subset (docs/information_plane.md), each trial's last measurement.

A *configuration* is one (objective, beta) (and a value of each other swept axis); its point is the mean over seeds
with +-1 sample standard deviation (ddof=1) in both axes. ``zoo_accuracy.png``: test accuracy against I(X;Z), one
colour and marker per objective, lines joining an objective's configurations in order of beta, the ``ce`` baseline a
black star. ``zoo_robust.png``: robust accuracy (the ``worst_case`` rows of ``evaluations.parquet``: correct under
every attack run at a budget) against I(X;Z), one panel per budget. The ranking table cuts the configurations' mean
I(X;Z) at its quantiles into at most :data:`MAX_BANDS` bands and lists, per band, each objective's best configuration
by mean test accuracy, ranked; where first and second differ by no more than one standard deviation the band makes no
ranking claim. Without the info-plane columns, test accuracy or attacks, a one-line note stands in for what needs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, absent_sentence, config_column, counts_sentence, format_epsilon,
                                       format_mean_std, format_value, percent_scale)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import configuration_color, legend_below, panel_grid, save_figure, tick_label
from orchestrator.reports.robustness import NORM_NAMES

TITLE = "IB zoo: accuracy on the common ruler"
RANKING_TITLE = "Ranking at matched rate"
ACC, IZX, BIAS, FLOOR = "test/acc", "infoplane/izx_bits", "infoplane/knn_bias_bits", "infoplane/izx_floor_bits"
BASELINE = "ce"  # the objective without a compression term: drawn as its own marker
ACCURACY_FILE, ROBUST_FILE = "zoo_accuracy.png", "zoo_robust.png"
MAX_BANDS = 4  # the most I(X;Z) bands of the ranking table
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")  # one per objective, beside its colour
BASELINE_STYLE = {"color": "black", "marker": "*", "markersize": 12}
LINE = {"linewidth": 1.2, "elinewidth": 0.8, "capsize": 2.5, "markersize": 6}


@register_report("zoo")
def zoo(results: SweepResults, out_dir: Path) -> list[Section]:
    """``zoo_accuracy.png``, ``zoo_robust.png`` and the ranking at matched rate, one table per I(X;Z) band."""
    trials = _trials(results)
    missing = [f"`{metric}`" for metric in (IZX, ACC) if not trials[metric].notna().any()]
    if missing:
        return [Section(TITLE, [f"No finished trial has {' or '.join(missing)} (the info-plane ruler needs "
                                "`infoplane_every` > 0), so there is no comparison of the objectives on a common ruler."])]
    budgets = _budgets(results, trials)
    configurations = _configurations(trials, [IZX, ACC, BIAS, FLOOR, *(_robust_column(b) for b in budgets)])
    styles = _styles(configurations)
    acc_scale = percent_scale(trials[ACC])
    robust_scale = percent_scale(pd.concat([trials[_robust_column(b)] for b in budgets])) if budgets else 100.0
    paragraphs = [_describe(styles), ruler_sentence(configurations), counts_sentence(results)]
    figure = _accuracy_figure(results, configurations, styles, acc_scale, trials[FLOOR])
    save_figure(figure, out_dir / ACCURACY_FILE)
    figures = [FigureFile(ACCURACY_FILE, f"{results.info.name}: test accuracy against I(X;Z) on the common k-NN ruler, "
                                         "one point per (objective, beta), mean ± 1 std over seeds in both axes.")]
    if budgets:
        save_figure(_robust_figure(results, configurations, styles, budgets, robust_scale), out_dir / ROBUST_FILE)
        figures.append(FigureFile(ROBUST_FILE, f"{results.info.name}: robust accuracy (worst case over the suite's "
                                               "attacks) against I(X;Z), one panel per budget, mean ± 1 std over seeds."))
    else:
        paragraphs.append(absent_sentence(results, "robust accuracy against I(X;Z)") or "`evaluations.parquet` has no "
                          "`worst_case` accuracy of a finished trial, so there is no robust accuracy against I(X;Z).")
    ranking = ranking_tables(configurations, list(styles), budgets, acc_scale, robust_scale)
    return [Section(TITLE, paragraphs, figures), Section(RANKING_TITLE, [_describe_bands(configurations, len(ranking))],
                                                         tables=ranking)]


# ---- one row per finished trial, one per configuration ---------------------------------------------------------

def _trials(results: SweepResults) -> pd.DataFrame:
    """The finished trials: ``trial_id``, ``objective``, ``series`` (objective and the other swept axes' values),
    ``beta`` (NaN without one), test accuracy, and the info-plane metrics' last measurements."""
    finished = results.finished
    default = results.info.objective or "all trials"
    objective = config_column("objective")
    others = [axis for axis in results.info.axes if axis not in ("objective", "beta")]
    trials = pd.DataFrame({"trial_id": finished["trial_id"].astype(str).to_numpy()})
    trials["objective"] = [default if value is None or pd.isna(value) else str(value)
                           for value in (finished[objective] if objective in finished.columns else [None] * len(finished))]
    other_values = (finished[[config_column(axis) for axis in others]].itertuples(index=False, name=None) if others
                    else [()] * len(finished))  # a frame without columns yields no rows
    trials["series"] = [name + "".join(f", {axis}={format_value(value)}" for axis, value in zip(others, values))
                        for name, values in zip(trials["objective"], other_values)]
    beta = finished[config_column("beta")] if config_column("beta") in finished.columns else pd.Series(np.nan, index=finished.index)
    trials["beta"] = pd.to_numeric(beta, errors="coerce").astype("float64").to_numpy()
    trials[ACC] = finished[ACC].to_numpy(dtype=float) if ACC in finished.columns else np.nan
    for metric in (IZX, BIAS, FLOOR):
        trials[metric] = trials["trial_id"].map(_last_measured(results, metric)).astype("float64")
    return trials


def _last_measured(results: SweepResults, metric: str) -> dict[str, float]:
    """Each trial's last non-null ``metric``: ``final.parquet``'s, else the last epoch that measured it."""
    values: dict[str, float] = {}
    if metric in results.epochs.columns:
        measured = results.epochs.dropna(subset=[metric]).sort_values(["trial_id", "epoch"])
        values.update({str(trial): float(value) for trial, value in measured.groupby("trial_id")[metric].last().items()})
    if metric in results.final.columns:
        values.update({str(trial): float(value) for trial, value in zip(results.final["trial_id"], results.final[metric])
                       if pd.notna(value)})
    return values


def _budgets(results: SweepResults, trials: pd.DataFrame) -> list[tuple[str, float]]:
    """The (norm, epsilon) budgets with a ``worst_case`` accuracy; adds each as a column of ``trials``."""
    rows = results.finished_evaluations
    rows = rows[(rows["evaluation"] == "worst_case") & (rows["metric"] == "acc")].dropna(subset=["value", "epsilon"])
    rows = rows.assign(trial_id=rows["trial_id"].astype(str))
    per_trial = rows.groupby(["trial_id", "norm", "epsilon"])["value"].mean()  # a resumed trial may repeat a row
    budgets = sorted({(str(norm), float(epsilon)) for _, norm, epsilon in per_trial.index},
                     key=lambda budget: (budget[0] != "linf", budget))
    for norm, epsilon in budgets:
        here = per_trial.xs((norm, epsilon), level=("norm", "epsilon"))
        trials[_robust_column((norm, epsilon))] = trials["trial_id"].map(here).astype("float64")
    return budgets


def _robust_column(budget: tuple[str, float]) -> str:
    return f"worst_case {budget[0]} {budget[1]!r}"


def _budget_label(budget: tuple[str, float]) -> str:
    norm, epsilon = budget
    return f"{NORM_NAMES.get(norm, norm)} eps {format_epsilon(epsilon, norm)}"


def _configurations(trials: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per (series, beta): ``objective``, ``trials`` (count) and ``<metric> mean``/``std``/``n`` of each metric."""
    grouped = trials.groupby(["series", "beta"], dropna=False, sort=True)
    frame = grouped.agg(objective=("objective", "first"), trials=("trial_id", "count"))
    for metric in metrics:
        statistics = grouped[metric].agg(["mean", "std", "count"])
        frame[f"{metric} mean"], frame[f"{metric} std"], frame[f"{metric} n"] = (
            statistics["mean"], statistics["std"], statistics["count"].astype(int))
    return frame.reset_index()


def _styles(configurations: pd.DataFrame) -> dict[str, dict]:
    """Colour and marker of each series, the ``ce`` baseline first (a black star), then by name."""
    objective_of = dict(zip(configurations["series"], configurations["objective"]))
    order = sorted(objective_of, key=lambda series: (objective_of[series] != BASELINE, series))
    styles, index = {}, 0
    for series in order:
        if objective_of[series] == BASELINE:
            styles[series] = BASELINE_STYLE
        else:
            styles[series] = {"color": configuration_color(index), "marker": MARKERS[index % len(MARKERS)]}
            index += 1
    return styles


# ---- figures ---------------------------------------------------------------------------------------------------

def _draw(panel: Axes, configurations: pd.DataFrame, metric: str, styles: dict[str, dict], scale: float) -> None:
    """Each series' configurations with ±1 std in both axes, joined in order of beta, each labelled with its beta."""
    for series, style in styles.items():
        rows = configurations[configurations["series"] == series].sort_values("beta", na_position="first")
        rows = rows.dropna(subset=[f"{IZX} mean", f"{metric} mean"])
        if rows.empty:
            continue
        x, y = rows[f"{IZX} mean"].to_numpy(float), rows[f"{metric} mean"].to_numpy(float) * scale
        panel.errorbar(x, y, xerr=np.nan_to_num(rows[f"{IZX} std"].to_numpy(float)),
                       yerr=np.nan_to_num(rows[f"{metric} std"].to_numpy(float)) * scale, **{**LINE, **style})
        for beta, x_value, y_value in zip(rows["beta"], x, y):
            if pd.notna(beta):
                panel.annotate(f"β={tick_label(beta)}", (x_value, y_value), xytext=(4, 3), textcoords="offset points",
                               fontsize="xx-small", color=style["color"])
    panel.grid(True, alpha=0.3)
    panel.set_xlabel("I(X;Z), bits (k-NN, the common ruler)")


def _legend(figure: Figure, styles: dict[str, dict]) -> None:
    handles = [Line2D([], [], label=series + (" (baseline)" if style is BASELINE_STYLE else ""),
                      linestyle="none" if style is BASELINE_STYLE else "-", **style) for series, style in styles.items()]
    legend_below(figure, handles, title="objective")


def _accuracy_figure(results, configurations, styles, scale, floors: pd.Series) -> Figure:
    figure = Figure(figsize=(7.5, 6.0), layout="constrained")
    panel = figure.add_subplot()
    _draw(panel, configurations, ACC, styles, scale)
    if floors.notna().any():
        floor = float(floors.median())
        panel.axvline(floor, color="grey", linestyle=":", linewidth=1.2)
        panel.annotate("k-NN reading of pure noise (I = 0)", (floor, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                       textcoords="offset points", fontsize="x-small", color="grey", va="top", rotation=90)
    panel.set_ylabel("test accuracy (%)" if scale == 100.0 else "test accuracy")
    panel.set_title(f"{results.info.name}: test accuracy vs I(X;Z)\nmean ± 1 std over seeds; lines join each objective's betas",
                    fontsize="medium")
    _legend(figure, styles)
    return figure


def _robust_figure(results, configurations, styles, budgets, scale) -> Figure:
    figure, panels = panel_grid(len(budgets), width=5.0, height=4.0)
    for panel, budget in zip(panels, budgets):
        _draw(panel, configurations, _robust_column(budget), styles, scale)
        panel.set_title(_budget_label(budget), fontsize="medium")
        panel.set_ylabel("robust accuracy (%)" if scale == 100.0 else "robust accuracy")
    figure.suptitle(f"{results.info.name}: robust accuracy (worst case over the attacks) vs I(X;Z)\nmean ± 1 std over seeds")
    _legend(figure, styles)
    return figure


# ---- text ------------------------------------------------------------------------------------------------------

def _describe(styles: dict[str, dict]) -> str:
    names = ", ".join(f"`{series}`" for series in styles)
    return (f"{len(styles)} objectives ({names}) trained on one backbone, data pipeline and robustness suite, placed on "
            "one ruler: each point is one configuration (objective and beta), its mean over seeds with ± 1 sample "
            "standard deviation in both axes; lines join an objective's configurations in order of beta (each "
            f"labelled β=...), and the `{BASELINE}` baseline, which has no compression term, is a black star.")


def ruler_sentence(configurations: pd.DataFrame) -> str:
    """What the common ruler is and the caveat of the k-NN estimator's bias (with its range when logged)."""
    text = (f"The common ruler is `{IZX}`: I(X;Z) = h(Z) - h(Z|X) in bits, read by one k-NN (Kozachenko-Leonenko) "
            "estimator on the same fixed held-out subset for every objective (each trial's last measurement); the "
            "objectives' own rates (`test/rate_bits`) are each in their own units and are not compared. Caveat: the "
            "k-NN estimate is biased upwards, the more so the higher Z's dimension and the more anisotropic its "
            "distribution (docs/information_plane.md, \"Reading k-NN numbers\"), so objectives whose latents differ in "
            "width or shape are read with different biases; ")
    bias = configurations[f"{BIAS} mean"].dropna()
    if bias.empty:
        return text + f"the trials did not log `{BIAS}`, so the size of that bias here is not known."
    return text + (f"`{BIAS}` (the estimator's bias on a Gaussian of each Z's own N, d and covariance) ranges from "
                   f"{bias.min():.3g} to {bias.max():.3g} bits over the configurations and is given beside I(X;Z) in the "
                   "ranking; the points are not corrected for it.")


def _describe_bands(configurations: pd.DataFrame, bands: int) -> str:
    unplaced = int(configurations[f"{IZX} mean"].isna().sum())
    return (f"The configurations' mean I(X;Z) cut at its quantiles into {bands} band(s) of about equal count (at most "
            f"{MAX_BANDS}, about one configuration per objective each); a configuration belongs to the band of its mean "
            "over seeds. Per band, each objective's best configuration by mean test accuracy, ranked by it; robust "
            "accuracy is the worst case over the attacks at each budget. Where first and second differ by no more than "
            "the larger of their two standard deviations (or either has one seed), the band makes no ranking claim."
            + (f" {unplaced} configuration(s) without I(X;Z) are left out." if unplaced else ""))


# ---- ranking at matched rate -----------------------------------------------------------------------------------

def band_edges(means: np.ndarray, series: int) -> np.ndarray:
    """Quantile edges of ``means`` into min(MAX_BANDS, len(means) // series) bands (at least one), duplicates dropped."""
    means = np.sort(np.asarray(means, dtype=float)[np.isfinite(means)])
    bands = max(1, min(MAX_BANDS, len(means) // max(series, 1)))
    return np.unique(np.quantile(means, np.linspace(0.0, 1.0, bands + 1)))


def ranking_tables(configurations: pd.DataFrame, series: list[str], budgets: list[tuple[str, float]], acc_scale: float,
                   robust_scale: float) -> list[Table]:
    """One table per I(X;Z) band: each series' best configuration there, ranked by mean test accuracy."""
    placed = configurations.dropna(subset=[f"{IZX} mean"])
    if placed.empty:
        return []
    edges = band_edges(placed[f"{IZX} mean"].to_numpy(), len(series))
    band = np.searchsorted(edges[1:-1], placed[f"{IZX} mean"].to_numpy(), side="right")
    bias = placed[f"{BIAS} mean"].notna().any()
    header = ["rank", "objective", "beta", "I(X;Z), bits", *(["k-NN bias, bits"] if bias else []), "test acc (%)",
              *(f"robust acc (%), {_budget_label(b)}" for b in budgets), "seeds"]
    count = max(1, len(edges) - 1)
    tables = []
    for index in range(count):
        here = placed[band == index]
        best = here.sort_values(f"{ACC} mean", ascending=False, na_position="last").drop_duplicates("series")
        verdict, tied = _verdict(best, acc_scale)
        rows = []
        for rank, (_, row) in enumerate(best.iterrows(), start=1):  # column names with spaces: not itertuples
            cells = _cells(row, bias, budgets, acc_scale, robust_scale)
            rows.append(["1=" if tied and rank <= 2 else str(rank), row["series"], *cells])
        for absent in (name for name in series if name not in set(best["series"])):
            rows.append(["absent", absent, *["–"] * (len(header) - 2)])
        low, high = edges[index], edges[min(index + 1, len(edges) - 1)]
        caption = (f"{RANKING_TITLE}, band {index + 1} of {count}: mean I(X;Z) in [{low:.3g}, {high:.3g}] bits; {verdict}")
        tables.append(Table(caption, header, rows))
    return tables


def _verdict(best: pd.DataFrame, scale: float) -> tuple[str, bool]:
    """The sentence on first against second in a band, and whether it makes no ranking claim."""
    ranked = best.dropna(subset=[f"{ACC} mean"])
    if len(ranked) < 2:
        only = f"only `{ranked['series'].iloc[0]}` has a configuration here" if len(ranked) else "no test accuracy here"
        return only + ".", False
    first, second = ranked.iloc[0], ranked.iloc[1]
    names = f"`{first['series']}` and `{second['series']}`"
    if first[f"{ACC} n"] < 2 or second[f"{ACC} n"] < 2:
        return f"no ranking claim: {names} need two seeds each for a spread.", True
    difference = (first[f"{ACC} mean"] - second[f"{ACC} mean"]) * scale
    spread = max(first[f"{ACC} std"], second[f"{ACC} std"]) * scale
    unit = " points" if scale == 100.0 else ""
    if difference <= spread:
        return f"no ranking claim: {names} differ by {difference:.2g}{unit} of test accuracy, within one std ({spread:.2g}).", True
    return f"`{first['series']}` leads by {difference:.2g}{unit} of test accuracy, more than one std ({spread:.2g}).", False


def _cells(row: pd.Series, bias: bool, budgets, acc_scale: float, robust_scale: float) -> list[str]:
    def cell(metric: str, **style) -> str:
        return format_mean_std(row[f"{metric} mean"], row[f"{metric} std"], int(row[f"{metric} n"]), **style)

    return [format_value(row["beta"]), cell(IZX), *([cell(BIAS)] if bias else []), cell(ACC, scale=acc_scale, decimals=1),
            *(cell(_robust_column(b), scale=robust_scale, decimals=1) for b in budgets), str(int(row["trials"]))]
