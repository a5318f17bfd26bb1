"""Report ``robustness``: accuracy under attack per beta, as in Zhang et al., Table II.

Reads ``evaluations.parquet``. The table has the paper's layout, one column per beta, ascending,
beta = 0 (plain cross-entropy) first as "CE (beta=0)", cells "mean ± std (n)" over seeds in
percent. Its rows: Clean; then for each budget (norm and epsilon) the headline row **robust
accuracy**, the share of examples that survived every attack run at that budget (the ``worst_case``
rows, robust accuracy in the field's sense), followed by each attack's own row at that budget
(FGSM, PGD-7, PGD-20, APGD-CE, APGD-DLR, uniform noise; CW-L2 and APGD at L2 radii). Budgets at
which only FGSM ran are left to the FGSM curves, unless no stronger attack ran at all. There is one
table per configuration of the other swept axes (the paper's non-regularized and regularized
ResNet-18 are two such configurations). The figure
``fgsm_curves.png`` shows FGSM accuracy against epsilon, one line per beta and one panel per
configuration, and ``cw_l2_curves.png`` does the same for Carlini-Wagner L2 when the sweep ran it.

The section "Gradient-masking checks" follows. An attack that differentiates a model whose
gradients are masked (shattered, vanishing, or stochastic) finds few adversarial examples, and the
model looks robust without being so. The evaluation suite runs sanity checks that such a model
tends to fail (Athalye, Carlini and Wagner, 2018; Carlini et al., "On evaluating adversarial
robustness", 2019) and writes one ``masking`` row per trial and check: ``value`` 1.0 when the
check is violated, 0.0 when it holds. A violated check means the robust accuracy of that trial is
not evidence of robustness: it puts a bold warning at the top of the robustness section, marks the
cells it makes unreliable with ⚠, and is listed in the checks' section.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.masking import explain, makes_unreliable
from orchestrator.reports import register_report
from orchestrator.reports.data import (
    SweepResults,
    absent_sentence,
    beta_label,
    config_column,
    configuration_labels,
    counts_sentence,
    evaluation_rows,
    format_epsilon,
    format_mean_std,
    format_value,
    other_axes,
    percent_scale,
    summarize_evaluation,
    sweep_betas,
)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import MEAN_LINE, add_beta_key, beta_colors, draw_mean_band, panel_grid, save_figure

TITLE = "Adversarial robustness"
MASKING_TITLE = "Gradient-masking checks"
FLAG = "⚠"  # marks a robustness cell whose trials include one that failed a check
ATTACKS = ("clean", "fgsm", "pgd", "cw_l2")  # the evaluations whose absence leaves no table or curve
# The rows under each budget's headline, in this order; each with its label.
ATTACK_ROWS = {"fgsm": "FGSM", "pgd": "PGD", "apgd_ce": "APGD-CE", "apgd_dlr": "APGD-DLR", "noise": "uniform noise",
               "cw_l2": "CW-L2"}
NORM_NAMES = {"linf": "L∞", "l2": "L2", "": "unspecified norm"}
CURVES = (("fgsm", "FGSM", "fgsm_curves.png"), ("cw_l2", "CW-L2", "cw_l2_curves.png"))


@register_report("robustness")
def robustness(results: SweepResults, out_dir: Path) -> list[Section]:
    """The robustness tables, ``fgsm_curves.png`` / ``cw_l2_curves.png``, and the masking checks."""
    absent = absent_sentence(results, "robustness table, accuracy-vs-epsilon curve or gradient-masking check")
    if absent:
        return [Section(TITLE, [absent])]
    checks = masking_checks(results)
    warning = warning_line(checks, results.info.objective or "")
    paragraphs = [warning] if warning else []
    attacks = [evaluation_rows(results, evaluation, "acc") for evaluation in ATTACKS]
    if all(rows.dropna(subset=["value"]).empty for rows in attacks):
        paragraphs.append("`evaluations.parquet` has no `clean`, `fgsm`, `pgd` or `cw_l2` accuracy of a finished trial, so there is no robustness table or curve.")
        return [Section(TITLE, paragraphs), masking_section(results, checks)]

    clean, fgsm, _, cw_l2 = attacks
    scale = percent_scale(pd.concat(attacks)["value"])
    violated = violated_checks(checks)
    flagged = list(zip(violated["trial_id"], violated["metric"]))  # (trial, check) pairs
    paragraphs += [_describe(results), counts_sentence(results)]
    if flagged:
        paragraphs.append(f"{FLAG} marks a cell with at least one trial that failed a gradient-masking check which makes "
                          "that row's number unreliable (a check on PGD's convergence flags the PGD rows, a failing CW "
                          "the L2 rows, any other check every attack row).")
    tables = _accuracy_tables(results, clean, scale, flagged)
    if not tables:
        paragraphs.append("`evaluations.parquet` has no clean or per-budget accuracy of a finished trial, so there is no robustness table.")
    figures = []
    for (evaluation, name, file_name), rows in zip(CURVES, (fgsm, cw_l2)):
        if rows.dropna(subset=["value"]).empty:
            continue
        usable = rows.dropna(subset=["value", "epsilon"])
        if len(usable) < len(rows.dropna(subset=["value"])):
            paragraphs.append(f"Some `{evaluation}` rows have no `epsilon`; the {name} curves leave them out.")
        if usable.empty:
            continue
        save_figure(_curves_figure(results, name, usable, clean, scale), out_dir / file_name)
        caption = (
            f"{results.info.name}: test accuracy under {name} against the attack's epsilon, one line per beta "
            "(mean over seeds, band ± 1 sample standard deviation)"
            + ("; the point at epsilon = 0 is the clean accuracy." if not clean.dropna(subset=["value"]).empty else ".")
        )
        figures.append(FigureFile(file_name, caption))
    return [Section(TITLE, paragraphs, figures, tables), masking_section(results, checks)]


def _describe(results: SweepResults) -> str:
    others = other_axes(results)
    names = ", ".join(f"`{axis}`" for axis in others)
    per = "" if not others else f" One table per value of {names}." if len(others) == 1 else f" One table per combination of {names}."
    return (
        "Test accuracy in percent under each attack, on the evaluation subset of each finished trial: "
        "mean ± sample standard deviation over seeds (number of trials). Rows: clean accuracy, then for each "
        "budget (norm and epsilon) **robust accuracy**, the share of examples correct under every attack run at "
        "that budget, followed by each attack's own accuracy there; columns: beta ascending, beta = 0 (plain "
        f"cross-entropy, CE) first.{per}"
    )


def _key(value: object) -> object:
    """A dictionary key for a value that may be null (NaN is not equal to itself)."""
    if value is None or pd.isna(value):
        return None
    return value if isinstance(value, str) else float(value)


def _cells(summary: pd.DataFrame, keys: list[str]) -> dict[tuple, tuple[float, float, int, tuple[str, ...]]]:
    return {
        (row["configuration"], _key(row["beta"]), *(_key(row[key]) for key in keys)): (row["mean"], row["std"], row["n"], row["trials"])
        for _, row in summary.iterrows()
    }


def _attack_label(evaluation: str, steps: float | None) -> str:
    label = ATTACK_ROWS.get(evaluation, evaluation)
    if evaluation == "pgd" and steps is not None:
        return f"{label}-{int(steps)}"
    if evaluation == "noise" and steps is not None:
        return f"{label} ({int(steps)} draws)"
    return label


def _budget_label(norm: str, epsilon: float) -> str:
    return f"{NORM_NAMES.get(norm, norm)} eps {format_epsilon(epsilon, norm)}"


def _accuracy_tables(results, clean, scale, flagged) -> list[Table]:
    """Per configuration: Clean, then per budget the robust-accuracy row and each attack's row."""
    keys = ["evaluation", "norm", "epsilon", "steps"]
    parts = [evaluation_rows(results, evaluation, "acc") for evaluation in ("worst_case", *ATTACK_ROWS)]
    attacks = pd.concat([p for p in parts if not p.empty]) if any(not p.empty for p in parts) else pd.DataFrame()
    clean_cells = _cells(summarize_evaluation(clean, []), [])
    cells = _cells(summarize_evaluation(attacks.dropna(subset=["epsilon"]), keys), keys) if not attacks.empty else {}
    if not clean_cells and not cells:
        return []
    budgets = sorted({(key[3], key[4]) for key in cells}, key=lambda b: (b[0] != "linf", b[0], b[1]))
    # budgets where a strong attack ran; FGSM-only budgets are the FGSM curves' (unless there is nothing else)
    strong = {(key[3], key[4]) for key in cells if key[2] not in ("worst_case", "fgsm", "noise")}
    budgets = [budget for budget in budgets if budget in strong] or budgets
    order = {name: i for i, name in enumerate(("worst_case", *ATTACK_ROWS))}
    betas = sweep_betas(results)
    header = ["evaluation", *(beta_label(beta, results.info.objective or "") for beta in betas)]
    tables = []
    for configuration in configuration_labels(results):
        rows = []
        if clean_cells:
            rows.append(["Clean", *(_cell(clean_cells.get((configuration, _key(beta))), scale, set()) for beta in betas)])
        for norm, epsilon in budgets:
            here = sorted({(key[2], key[5]) for key in cells if key[0] == configuration and (key[3], key[4]) == (norm, epsilon)},
                          key=lambda a: (order.get(a[0], len(order)), a[0], -1 if a[1] is None else a[1]))
            for evaluation, steps in here:
                label = (f"**robust accuracy, {_budget_label(norm, epsilon)}**" if evaluation == "worst_case"
                         else f"{_attack_label(evaluation, steps)}, {_budget_label(norm, epsilon)}")
                unreliable = {trial for trial, check in flagged if makes_unreliable(check, evaluation, norm)}
                row = [_cell(cells.get((configuration, _key(beta), evaluation, norm, epsilon, steps)), scale, unreliable)
                       for beta in betas]
                rows.append([label, *(f"**{c}**" if evaluation == "worst_case" and c != "–" else c for c in row)])
        caption = (f"Test accuracy (%) under attack, {configuration}: mean ± sample std over seeds (n finished trials); "
                   "robust accuracy is the worst case over the attacks below it")
        tables.append(Table(caption, header, rows))
    return tables


def _cell(cell, scale: float, flagged: set[str]) -> str:
    if cell is None:
        return "–"
    mean, std, n, trials = cell
    text = format_mean_std(mean, std, n, scale=scale, decimals=1)
    return f"{text} {FLAG}" if flagged.intersection(trials) else text


def _curves_figure(results: SweepResults, name: str, rows: pd.DataFrame, clean: pd.DataFrame, scale: float):
    summary = summarize_evaluation(rows, ["norm", "epsilon"])
    clean_cells = _cells(summarize_evaluation(clean, []), [])
    panels_keys = [
        (configuration, norm)
        for configuration in configuration_labels(results)
        for norm in sorted(summary.loc[summary["configuration"] == configuration, "norm"].unique())
    ]
    several_norms = summary["norm"].nunique() > 1
    betas = sweep_betas(results)
    color_of = beta_colors(betas)
    drawn = set()  # the _key of each beta with a line in some panel
    figure, panels = panel_grid(len(panels_keys))
    for panel, (configuration, norm) in zip(panels, panels_keys):
        for beta in betas:
            line = summary[(summary["configuration"] == configuration) & (summary["norm"] == norm)]
            line = line[line["beta"].isna()] if pd.isna(beta) else line[line["beta"] == beta]
            if line.empty:
                continue
            x, mean, std = (line[c].to_numpy(dtype=float) for c in ("epsilon", "mean", "std"))
            start = clean_cells.get((configuration, _key(beta)))
            if start is not None and not np.any(x == 0):
                x, mean, std = np.append(x, 0.0), np.append(mean, start[0]), np.append(std, start[1])
            draw_mean_band(panel, x, mean * scale, std * scale, color_of(beta))
            drawn.add(_key(beta))
        panel.set_title(configuration + (f", {NORM_NAMES.get(norm, norm)}" if several_norms else ""), fontsize="medium")
        panel.set_xlabel(f"epsilon ({NORM_NAMES.get(norm, norm)} norm of the perturbation, pixels in [0, 1])")
        panel.set_ylabel(f"accuracy under {name} (%)")
        panel.set_ylim(-2, 102)
        panel.grid(True, alpha=0.3)
        if norm == "linf":
            top = panel.secondary_xaxis("top", functions=(lambda e: e * 255, lambda k: k / 255))
            top.set_xlabel("epsilon × 255 (8-bit pixel levels)", fontsize="small")
    figure.suptitle(f"{results.info.name}: accuracy under {name} vs epsilon\nmean ± 1 std over seeds; epsilon = 0 is the clean accuracy")
    named = [beta for beta in betas if _key(beta) in drawn]
    add_beta_key(figure, panels, color_of, named, [beta_label(beta, results.info.objective or "") for beta in named], MEAN_LINE)
    return figure


# ---- gradient-masking checks ----------------------------------------------------------------

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
        f"(see \"{MASKING_TITLE}\" below).**"
    )


def masking_section(results: SweepResults, checks: pd.DataFrame) -> Section:
    """The section that lists every violated check, or says that all passed, or that none ran."""
    if checks.empty:
        text = (
            "No gradient-masking check ran: `evaluations.parquet` has no `masking` rows of finished trials, "
            "so nothing here shows that the robust accuracies above are not inflated by masked gradients."
        )
        return Section(MASKING_TITLE, [text])
    names = sorted(checks["metric"].unique())
    described = "; ".join(f"`{name}`: {explain(name)}" for name in names)
    about = (f"Checks run on each trial ({len(names)}): {described}. A violated check is evidence of gradient "
             "masking; quiet checks do not rule it out.")
    violated = violated_checks(checks)
    if violated.empty:
        return Section(MASKING_TITLE, [f"All {len(checks)} checks passed on {checks['trial_id'].nunique()} trials.", about])
    summary = f"**{len(violated)} of {len(checks)} checks failed, on {violated['trial_id'].nunique()} of {checks['trial_id'].nunique()} trials.**"
    return Section(MASKING_TITLE, [summary, about], tables=[_violations_table(results, violated)])


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
