"""The ``dib`` slice's report panels (Zhang et al., Fig. 5): ``active_dims_vs_beta`` and ``spectra``.

``active_dims_vs_beta`` (Fig. 5 left): ``test/active_dims`` (the mean number of non-zero entries of the
quantized representation per test example) of each finished trial's last epoch against ``beta``, in
``active_dims_vs_beta.png``; and, when the sweep reports it, ``test/bits_per_dim`` (solid) with
``train/bits_per_dim`` (dashed) in ``bits_per_dim_vs_beta.png``, a second figure because bits and counts
do not share an axis. Both use the layout of :mod:`orchestrator.reports.versus_beta` (mean over seeds,
band of +-1 sample standard deviation, one line per configuration of the other swept axes) and a
"mean ± std (n)" table per metric. The ERROR trials are listed once, under the first figure.

``spectra`` (Fig. 5 right): the ``spectrum`` rows of ``evaluations.parquet`` (metric ``singular_value``,
``index`` 0 = largest) in ``spectra.png``: singular value against index, one line per beta (mean over
seeds at each index, band of +-1 sample standard deviation), log y, one panel per configuration of the
other swept axes. The paper's reading: with more compression the spectrum concentrates in fewer, larger
singular values (the classifier becomes closer to low rank).

Driver-side: imports no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, absent_sentence, beta_label, configuration_labels, counts_sentence,
                                       evaluation_rows, other_axes, summarize_evaluation, sweep_betas)
from orchestrator.reports.document import FigureFile, Section
from orchestrator.reports.figures import MEAN_LINE, add_beta_key, beta_colors, draw_mean_band, panel_grid, save_figure
from orchestrator.reports.versus_beta import VersusBeta, versus_beta_sections

ACTIVE_DIMS = VersusBeta(
    report="active_dims_vs_beta",
    quantity="active dimensions",
    primary="test/active_dims",
    secondary=None,
    ylabel="active dimensions (non-zero entries per example)",
    log_y=True,
)
BITS_PER_DIM = VersusBeta(
    report="bits_per_dim_vs_beta",
    quantity="bits per dimension",
    primary="test/bits_per_dim",
    secondary="train/bits_per_dim",
    ylabel="rate (bits per dimension)",
    log_y=True,
    list_errors=False,
)


@register_report("active_dims_vs_beta")
def active_dims_vs_beta(results: SweepResults, out_dir: Path) -> list[Section]:
    """Active dimensions vs beta, and bits per dimension when reported; writes their PNGs into ``out_dir``."""
    sections = versus_beta_sections(results, out_dir, ACTIVE_DIMS)
    if BITS_PER_DIM.primary in results.final.columns:
        sections += versus_beta_sections(results, out_dir, BITS_PER_DIM)
    return sections


SPECTRA_TITLE = "Singular values of the classifier"
SPECTRA_FILE = "spectra.png"


@register_report("spectra")
def spectra(results: SweepResults, out_dir: Path) -> list[Section]:
    """The spectrum figure; writes ``out_dir/spectra.png`` when there are spectrum rows."""
    absent = absent_sentence(results, "spectrum figure")
    if absent:
        return [Section(SPECTRA_TITLE, [absent])]
    rows = evaluation_rows(results, "spectrum", "singular_value").dropna(subset=["value", "index"])
    if rows.empty:
        return [Section(SPECTRA_TITLE, ["`evaluations.parquet` has no `spectrum` rows (metric `singular_value`) of a finished trial, so there is no spectrum figure."])]
    summary = summarize_evaluation(rows, ["index"])
    positive = summary[summary["mean"] > 0]
    others = other_axes(results)
    names = ", ".join(f"`{axis}`" for axis in others)
    per = "" if not others else f", one panel per value of {names}" if len(others) == 1 else f", one panel per combination of {names}"
    paragraphs = [
        "Singular values of the classifier's weight matrix (the linear layer from the representation to the logits) "
        f"after training, largest first; one line per beta (mean over seeds at each index, band ± 1 sample standard deviation){per}. "
        "A spectrum that falls faster means a classifier closer to low rank.",
        counts_sentence(results),
    ]
    if len(positive) < len(summary):
        paragraphs.append(f"{len(summary) - len(positive)} mean singular values are zero or negative and cannot be drawn on the log axis; they are left out.")
    save_figure(_spectra_figure(results, positive), out_dir / SPECTRA_FILE)
    caption = f"{results.info.name}: singular values of the classifier against their index (0 = largest), log y, one line per beta."
    return [Section(SPECTRA_TITLE, paragraphs, [FigureFile(SPECTRA_FILE, caption)])]


def _spectra_figure(results: SweepResults, summary):
    configurations = [label for label in configuration_labels(results) if label in set(summary["configuration"])]
    betas = sweep_betas(results)
    color_of = beta_colors(betas)
    drawn = set()  # indices into betas of the ones with a line in some panel
    figure, panels = panel_grid(len(configurations))
    floor = float(summary["mean"].min()) / 10
    for panel, configuration in zip(panels, configurations):
        for number, beta in enumerate(betas):
            line = summary[summary["configuration"] == configuration]
            line = line[line["beta"].isna()] if np.isnan(beta) else line[line["beta"] == beta]
            if line.empty:
                continue
            x, mean, std = (line[c].to_numpy(dtype=float) for c in ("index", "mean", "std"))
            draw_mean_band(panel, x, mean, std, color_of(beta), floor=floor)
            drawn.add(number)
        panel.set_yscale("log")
        panel.set_title(configuration, fontsize="medium")
        panel.set_xlabel("index of the singular value (0 = largest)")
        panel.set_ylabel("singular value (log scale)")
        panel.grid(True, which="major", alpha=0.3)
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f"{results.info.name}: singular values of the classifier\nmean ± 1 std over seeds at each index")
    named = [beta for number, beta in enumerate(betas) if number in drawn]
    add_beta_key(figure, panels, color_of, named, [beta_label(beta, results.info.objective or "") for beta in named], MEAN_LINE)
    return figure
