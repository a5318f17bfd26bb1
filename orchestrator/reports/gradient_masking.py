"""The gradient-masking checks of the ``robustness`` report: which trials failed which check.

An attack that differentiates a model whose gradients are masked (shattered, vanishing, or
stochastic) finds few adversarial examples, and the model looks robust without being so. The
evaluation suite runs sanity checks that such a model tends to fail (Athalye, Carlini and Wagner,
2018; Carlini et al., "On evaluating adversarial robustness", 2019) and writes one ``masking`` row
per trial and check to ``evaluations.parquet``: ``value`` 1.0 when the check is violated, 0.0 when
it holds. A violated check means the robust accuracy of that trial is not evidence of robustness.
"""

from __future__ import annotations

import pandas as pd

from orchestrator.masking import explain
from orchestrator.reports.common import SweepResults, config_column, format_value
from orchestrator.reports.document import Section, Table
from orchestrator.reports.evaluation_data import beta_label, evaluation_rows, format_epsilon

TITLE = "Gradient-masking checks"
FLAG = "⚠"  # marks a robustness cell whose trials include one that failed a check

def masking_checks(results: SweepResults) -> pd.DataFrame:
    """The finished trials' ``masking`` rows with a value (1.0 = violated), with configuration and beta."""
    return evaluation_rows(results, "masking").dropna(subset=["value"])


def violated_checks(checks: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``checks`` whose check is violated (value 1.0; anything at or above 0.5 counts)."""
    return checks[checks["value"] >= 0.5]


def warning_line(checks: pd.DataFrame, objective: str = "") -> str | None:
    """The bold warning that opens the robustness section when a check failed; None when none did."""
    violated = violated_checks(checks)
    if violated.empty:
        return None
    cells = sorted({(configuration, beta) for configuration, beta in zip(violated["configuration"], violated["beta"])}, key=lambda c: (c[0], c[1]))
    where = "; ".join(beta_label(beta, objective) if configuration == "all trials"
                      else f"{beta_label(beta, objective)}, {configuration}" for configuration, beta in cells)
    return (
        f"**Warning: {len(violated)} of {len(checks)} gradient-masking checks failed, on "
        f"{violated['trial_id'].nunique()} of {checks['trial_id'].nunique()} trials ({where}). Robust accuracy "
        f"that comes from masked gradients is not robustness: the attack cells marked {FLAG} are unverified "
        f"(see \"{TITLE}\" below).**"
    )


def masking_section(results: SweepResults, checks: pd.DataFrame) -> Section:
    """The section that lists every violated check, or says that all passed, or that none ran."""
    if checks.empty:
        text = (
            "No gradient-masking check ran: `evaluations.parquet` has no `masking` rows of finished trials, "
            "so nothing here shows that the robust accuracies above are not inflated by masked gradients."
        )
        return Section(TITLE, [text])
    names = sorted(checks["metric"].unique())
    described = "; ".join(f"`{name}`: {explain(name)}" for name in names)
    about = (f"Checks run on each trial ({len(names)}): {described}. A violated check is evidence of gradient "
             "masking; quiet checks do not rule it out.")
    violated = violated_checks(checks)
    if violated.empty:
        return Section(TITLE, [f"All {len(checks)} checks passed on {checks['trial_id'].nunique()} trials.", about])
    summary = f"**{len(violated)} of {len(checks)} checks failed, on {violated['trial_id'].nunique()} of {checks['trial_id'].nunique()} trials.**"
    return Section(TITLE, [summary, about], tables=[_violations_table(results, violated)])


def _violations_table(results: SweepResults, violated: pd.DataFrame) -> Table:
    axes = list(results.info.axes)
    seed = config_column("seed") in violated.columns
    strengths = [column for column in ("norm", "epsilon", "steps") if _has_values(violated[column])]
    header = ["trial_id", *axes, *(["seed"] if seed else []), "check", *strengths]
    rows = []
    for _, row in violated.sort_values(["trial_id", "metric"]).iterrows():
        cells = [str(row["trial_id"]), *(format_value(row[config_column(axis)]) for axis in axes)]
        if seed:
            cells.append(format_value(row[config_column("seed")]))
        cells.append(f"`{row['metric']}`")
        for column in strengths:
            cells.append(format_epsilon(row[column], row["norm"]) if column == "epsilon" else format_value(row[column]) or "–")
        rows.append(cells)
    return Table(f"Violated gradient-masking checks ({len(rows)})", header, rows)


def _has_values(column: pd.Series) -> bool:
    return bool((column.notna() & (column.astype("str") != "")).any())
