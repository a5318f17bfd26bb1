"""Report ``linear_evaluation`` of ``simclr_dib``: Zhang et al.'s Table I layout.

One table per configuration of the swept axes other than beta (e.g. per temperature), one row per
beta ("SimCLR" at beta = 0, "Compressive" above): the linear probe's train and test accuracy in
percent, the probe on the rounded representation and the test rate; the paper's Table I beside
them. No figure: ``accuracy_vs_beta`` draws the same accuracies. Only finished (TERMINATED) trials
count; means and sample standard deviations are over seeds.

Driver-side: imports no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, configuration_label, counts_sentence, error_table, format_mean_std,
                                       format_value, other_axes, seed_cells, sweep_betas, sweep_configurations)
from orchestrator.reports.document import Section, Table

# Zhang et al., Table I (linear evaluation on CIFAR-10, temperature 0.07): (model, beta, train %, test %).
ZHANG_TABLE_I = (("SimCLR", 0.0, 71.97, 71.04), ("Compressive", 0.05, 71.51, 71.06),
                 ("Compressive", 0.1, 71.73, 71.31), ("Compressive", 0.5, 71.14, 70.66))
PERCENT = {"scale": 100.0, "decimals": 2}  # how format_mean_std writes an accuracy cell: percent, two decimals as in Table I


@register_report("linear_evaluation")
def linear_evaluation(results: SweepResults, out_dir: Path) -> list[Section]:
    """The linear evaluation in Table I's layout (no figure: ``accuracy_vs_beta`` draws it)."""
    title = "Linear evaluation (Zhang et al., Table I layout)"
    info = results.info
    if "beta" not in info.axes or "test/acc" not in results.final.columns:
        return [Section(title, [f"Sweep `{info.name}` has no swept `beta` or no `test/acc`, so there is no Table I."])]
    others = other_axes(results)
    configurations = sweep_configurations(results.final, others)
    betas = sweep_betas(results)
    keys = others + ["beta"]
    metrics = (("train/acc", "train acc (%)", PERCENT), ("test/acc", "test acc (%)", PERCENT),
               ("test/rate_bits", "test rate (bits)", {}), ("probe/rounded_test_acc", "test acc, h_hat (%)", PERCENT))
    cells = {metric: seed_cells(results, metric, keys) for metric, _, _ in metrics}
    header = ["model", *(label for _, label, _ in metrics)]
    tables = []
    for configuration in configurations:
        rows = []
        for beta in betas:
            row = ["SimCLR (beta=0)" if beta == 0 else f"Compressive (beta={beta:g})"]
            for metric, _, style in metrics:
                row.append(format_mean_std(*cells[metric].get((*configuration, format_value(beta)), (np.nan, np.nan, 0)), **style))
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
