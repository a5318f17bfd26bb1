"""The rows of ``evaluations.parquet`` that a report draws, summarised over seeds.

Shared by the ``robustness`` and ``spectra`` reports. Only finished (TERMINATED) trials count.
Each row gets two columns that the reports group by: ``configuration``, the label of its values
of the swept axes other than beta (``"entropy_model=factorized"``, or ``"all trials"`` when beta is
the only axis), and ``beta`` (float, NaN when the sweep does not sweep beta). A trial contributes
one value per cell (the mean of its rows there, should a resumed trial have repeated one); the
cell's mean and sample standard deviation (ddof=1) are then taken over its trials, i.e. its seeds.
"""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.reports.common import EVALUATIONS_FILE, SweepResults, config_column, format_mean_std, format_value
from orchestrator.reports.versus_beta import configuration_label, sweep_configurations

# An epsilon within this of k/255 is shown as "k/255": attacks on 8-bit images use such budgets.
_PIXEL_LEVEL_TOLERANCE = 1e-6


def other_axes(results: SweepResults) -> list[str]:
    """The swept axes other than beta, in the sweep's order: one panel or table per combination."""
    return [axis for axis in results.info.axes if axis != "beta"]


def configuration_labels(results: SweepResults) -> list[str]:
    """The label of every configuration of the other axes in the sweep, finished or not, sorted."""
    others = other_axes(results)
    return [configuration_label(others, key) for key in sweep_configurations(results.final, others)]


def sweep_betas(results: SweepResults) -> list[float]:
    """Every beta of the sweep, ascending; ``[nan]`` when the sweep does not sweep beta."""
    if "beta" not in results.info.axes:
        return [math.nan]
    return sorted(float(beta) for beta in results.final[config_column("beta")].dropna().unique())


def evaluation_rows(results: SweepResults, evaluation: str, metric: str | None = None) -> pd.DataFrame:
    """Finished trials' rows of ``evaluation`` (and ``metric``), with ``configuration`` and ``beta``."""
    rows = results.finished_evaluations
    rows = rows[rows["evaluation"] == evaluation]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    rows = rows.copy()
    others = other_axes(results)
    rows["configuration"] = [
        configuration_label(others, tuple(format_value(value) for value in values))
        for values in rows[[config_column(axis) for axis in others]].itertuples(index=False, name=None)
    ] if others else "all trials"
    if "beta" in results.info.axes:
        rows["beta"] = pd.to_numeric(rows[config_column("beta")]).astype("float64")
    else:
        rows["beta"] = math.nan
    return rows


def summarize_evaluation(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, std (ddof=1) and n over trials of ``value`` per configuration, beta and ``keys``.

    Columns: ``configuration``, ``beta``, ``keys...``, ``mean``, ``std``, ``n`` and ``trials`` (the
    sorted ids of the trials in the cell). Rows whose ``value`` is null are not counted.
    """
    columns = ["configuration", "beta", *keys]
    rows = rows.dropna(subset=["value"])
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "mean", "std", "n", "trials"])
    per_trial = rows.groupby(["trial_id", *columns], dropna=False, sort=False)["value"].mean().reset_index()
    grouped = per_trial.groupby(columns, dropna=False, sort=True)
    summary = grouped["value"].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    summary["trials"] = grouped["trial_id"].agg(lambda ids: tuple(sorted(ids)))
    summary = summary.reset_index()
    summary["n"] = summary["n"].astype(int)
    return summary


def percent_scale(values: pd.Series) -> float:
    """100 for accuracies stored as fractions in [0, 1]; 1 when some value is above 1 (already %)."""
    return 1.0 if bool((values.dropna() > 1).any()) else 100.0


def format_percent(mean: float, std: float, n: int, scale: float) -> str:
    """A robustness cell in percent, one decimal: ``"44.3 ± 1.2 (2)"``, ``"44.3 (1)"``, or ``"–"``."""
    return format_mean_std(mean * scale, std * scale, n, ".1f", ".1f")


def format_epsilon(epsilon: float, norm: str = "linf") -> str:
    """``"8/255"`` for an L-inf epsilon within 1e-6 of k/255 (1 <= k < 255), else the decimal (``"0.5"``).

    Pixel levels mean something for an L-inf radius only: an L2 radius of 1.0 is ``"1"``.
    """
    if epsilon is None or pd.isna(epsilon):
        return "–"
    level = round(float(epsilon) * 255)
    if norm == "linf" and 1 <= level < 255 and abs(float(epsilon) - level / 255) <= _PIXEL_LEVEL_TOLERANCE:
        return f"{level}/255"
    return f"{float(epsilon):g}"


# Objectives whose beta = 0 is plain cross-entropy training (the paper's "CE" column); for the
# others (knn_ib's beta'' = 0 keeps H[Z|Y], simclr_dib's is SimCLR) beta = 0 is just beta = 0.
CROSS_ENTROPY_AT_ZERO = ("dib", "vib")


def beta_label(beta: float, objective: str = "") -> str:
    """A beta as a column or legend label: ``"CE (beta=0)"`` for an objective whose beta = 0 is
    plain cross-entropy, else ``"beta=0"``; ``"beta=0.5"`` otherwise."""
    if pd.isna(beta):
        return "all trials"
    if beta == 0 and objective in CROSS_ENTROPY_AT_ZERO:
        return "CE (beta=0)"
    return f"beta={beta:g}"


def absent_sentence(results: SweepResults, what: str) -> str | None:
    """Why there is no ``what`` when the sweep wrote no ``evaluations.parquet``; None when it did."""
    if results.evaluations is not None:
        return None
    return f"The sweep wrote no `{EVALUATIONS_FILE}` (it ran no evaluation suite), so there is no {what}."
