"""Report ``knn_decoders``: test accuracy of the decoders fitted after training, and the k-NN H(Z), against beta.

For ``knn_ib`` (Kirsch, Lyle and Gal, Fig. 3), whose encoder is trained without a decoder:
``decoder/resfc_acc`` (the deep residual fully-connected decoder, solid, band of +-1 sample
standard deviation over seeds) and ``decoder/gmm_acc`` (one Gaussian per class, dashed) of each
finished trial, read from its last epoch, against beta (the paper's beta''); one line per
configuration of the other swept axes, and a "mean ± std (n)" table per decoder. The layout is
:mod:`orchestrator.reports.versus_beta`'s; the paper reports 92% on CIFAR-10 with either decoder. The section says
what each decoder reads and names every configuration where the Gaussian decoder leads the residual one by more
than :data:`NOISE_GAP`: a code shrunk into the zero-entropy noise (docs/claims.md, the k-NN IB).

A second section reads knn_ib's k-NN H(Z) on the test batches (``test/rate_bits``) beside the
estimator's bias that the objective measures on the same batches (``test/h_z_knn_bias_bits``:
the k-NN estimate on a Gaussian of the batch's covariance minus its exact entropy;
:func:`trainables.knn_bias.knn_entropy_bias_bits`). ``knn_entropy_vs_beta.png`` draws H(Z)
(solid, filled dots), H(Z) - bias (dashed, hollow dots) and shades the band between them, one
colour per configuration; the table gives all three per beta. A sweep without the bias column
gets no such section. Driver-side: imports no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from orchestrator.reports import register_report
from orchestrator.reports.data import (SweepResults, beta_label, config_column, configuration_label, counts_sentence,
                                       format_mean_std, format_value, other_axes, summarize_over_seeds)
from orchestrator.reports.document import FigureFile, Section, Table
from orchestrator.reports.figures import apply_beta_scale, configuration_color, legend_below, save_figure
from orchestrator.reports.versus_beta import VersusBeta, versus_beta_sections

SPEC = VersusBeta(
    report="knn_decoders",
    quantity="decoder test accuracy",
    primary="decoder/resfc_acc",
    secondary="decoder/gmm_acc",
    ylabel="test accuracy (fraction correct)",
    log_y=False,
    list_errors=False,
)
H_Z, H_Z_BIAS = "test/rate_bits", "test/h_z_knn_bias_bits"
H_Z_CORRECTED = "rate_bits - h_z_knn_bias_bits"  # derived here: H(Z) corrected for the Gaussian reference's bias
ENTROPY_TITLE = "k-NN H(Z) vs beta, with the estimator's bias"
ENTROPY_FILE_NAME = "knn_entropy_vs_beta.png"


# How far the Gaussian decoder may lead the residual one, in accuracy, before the report says the code has shrunk into
# the noise: at knn_ib_mnist5k's beta'' 0.8 the gap is 0.51 (benchmarks/knn_scale.py), at beta'' 0 and 0.4 under 0.011.
NOISE_GAP = 0.2
DECODERS_READING = (
    "Both decoders are scored on the noiseless test latents f(x), but they read different things. The residual decoder "
    "is trained on Z = f(x) + zero-entropy noise (std 0.24 per dimension), the representation the objective prices; "
    "the Gaussian decoder fits its class means to the noiseless f(x). Where f(x) has shrunk far below the noise, the "
    "residual decoder can learn only the class prior while the Gaussian decoder still separates the classes by tiny "
    "differences in f(x): then Z carries little about Y, and the Gaussian decoder's accuracy is a property of the "
    "noiseless code, not of Z (`python -m benchmarks knn_scale` measures f(x) against the noise)."
)


@register_report("knn_decoders")
def knn_decoders(results: SweepResults, out_dir: Path) -> list[Section]:
    """Decoder accuracies vs beta (``out_dir/knn_decoders.png``), with a reading of the two decoders and the
    configurations where the Gaussian decoder leads the residual one by more than :data:`NOISE_GAP`, and, when logged,
    the k-NN H(Z) with its bias (``out_dir/knn_entropy_vs_beta.png``)."""
    sections = versus_beta_sections(results, out_dir, SPEC)
    noise = results.final.get(config_column("noise"))
    if sections and (noise is None or noise.fillna(True).astype(bool).any()):  # the no-noise ablation has no noise
        sections[0].paragraphs[1:1] = [DECODERS_READING, *_noise_gap_sentences(results)]
    return sections + _entropy_sections(results, out_dir)


def _noise_gap_sentences(results: SweepResults) -> list[str]:
    """One sentence naming the configurations whose mean Gaussian-decoder accuracy exceeds the residual decoder's by
    more than :data:`NOISE_GAP`; none when no configuration does (or a decoder was not logged)."""
    finished = results.finished
    if not {SPEC.primary, SPEC.secondary} <= set(finished.columns):
        return []
    axes = other_axes(results) + (["beta"] if "beta" in results.info.axes else [])
    residual = summarize_over_seeds(finished, SPEC.primary, axes)
    gaussian = summarize_over_seeds(finished, SPEC.secondary, axes)
    gap = gaussian["mean"] - residual["mean"]
    flagged = [
        f"{configuration_label(axes, tuple(format_value(residual.loc[i, config_column(a)]) for a in axes))} "
        f"(residual {residual.loc[i, 'mean']:.3f}, Gaussian {gaussian.loc[i, 'mean']:.3f})"
        for i in residual.index[gap > NOISE_GAP]
    ]
    if not flagged:
        return []
    return [f"**The code has shrunk into the noise** where the Gaussian decoder leads the residual one by more than "
            f"{NOISE_GAP:g}: {'; '.join(flagged)}."]


def _entropy_sections(results: SweepResults, out_dir: Path) -> list[Section]:
    final = results.final
    if "beta" not in results.info.axes or H_Z not in final.columns or H_Z_BIAS not in final.columns:
        return []
    finished = results.finished
    finished = finished.assign(**{H_Z_CORRECTED: finished[H_Z] - finished[H_Z_BIAS]})
    if not finished[H_Z_CORRECTED].notna().any():
        return []
    others = other_axes(results)
    metrics = (H_Z, H_Z_BIAS, H_Z_CORRECTED)
    summaries = {m: summarize_over_seeds(finished, m, others + ["beta"]) for m in metrics}
    paragraphs = [
        f"`{H_Z}` is knn_ib's Kozachenko-Leonenko estimate of H(Z) on the test batches (zero-entropy noise added, "
        f"so it is also I(X;Z)); the estimate is biased upwards when the latent size is not small against the "
        f"batch. `{H_Z_BIAS}` is that bias measured on a Gaussian with the batch's own size, dimension and sample "
        f"covariance (its k-NN estimate minus its exact entropy), and `{H_Z_CORRECTED}` the H(Z) it leaves: exact "
        "for Gaussian latents only, an estimate rather than a bound, and an overstatement of the bias when the "
        "latent size is a sizeable fraction of the batch (docs/information_plane.md, \"Reading k-NN numbers\").",
        counts_sentence(results),
    ]
    figure = _entropy_figure(results, summaries, others)
    save_figure(figure, out_dir / ENTROPY_FILE_NAME)
    caption = (f"{results.info.name}: final `{H_Z}` (solid, filled) and `{H_Z_CORRECTED}` (dashed, hollow) vs beta, "
               "mean over seeds; the shaded band between them is the k-NN bias.")
    return [Section(ENTROPY_TITLE, paragraphs, [FigureFile(ENTROPY_FILE_NAME, caption)], [_entropy_table(results, summaries, others)])]


def _entropy_figure(results: SweepResults, summaries: dict[str, pd.DataFrame], others: list[str]) -> Figure:
    raw = summaries[H_Z]
    keys = [config_column(axis) for axis in others]
    groups = list(raw.groupby(keys, sort=True, dropna=False)) if keys else [((), raw)]
    figure = Figure(figsize=(7.5, 4.8 + 0.2 * min(len(groups), 6)), layout="constrained")  # the legend goes below
    axes = figure.add_subplot()
    apply_beta_scale(axes, raw[config_column("beta")].astype(float).tolist())  # the decoder section says how
    # the drawn artists themselves, one legend column each: H(Z), H(Z) - bias, the band between them
    handles: tuple[list, list, list] = ([], [], [])
    for index, (key, group) in enumerate(groups):
        color = configuration_color(index)
        rows = group.index
        x = group[config_column("beta")].to_numpy(float)
        order = np.argsort(x)
        x = x[order]
        mean = raw.loc[rows, "mean"].to_numpy(float)[order]
        corrected = summaries[H_Z_CORRECTED].loc[rows, "mean"].to_numpy(float)[order]
        label = configuration_label(others, tuple(format_value(v) for v in (key if isinstance(key, tuple) else (key,))))
        prefix = f"{label}: " if others else ""  # one colour per configuration of the other axes; none to name without them
        (line,) = axes.plot(x, mean, color=color, marker="o", markersize=4, linewidth=1.4, label=f"{prefix}k-NN H(Z)")
        (hollow,) = axes.plot(x, corrected, color=color, marker="o", markersize=5, markerfacecolor="white", linestyle="--",
                              linewidth=1.2, label=f"{prefix}H(Z) - bias")
        band = axes.fill_between(x, corrected, mean, color=color, alpha=0.15, linewidth=0, label=f"{prefix}the bias")
        for column, artist in zip(handles, (line, hollow, band)):
            column.append(artist)
    legend_below(figure, [artist for column in handles for artist in column], columns=3)
    axes.axhline(0.0, color="grey", linewidth=0.8)  # H(Z) >= 0 with zero-entropy noise: below it, the bias is overstated
    axes.set_ylabel("H(Z), bits per example")
    axes.set_title(f"{results.info.name}: k-NN H(Z) and its bias vs beta ({len(results.finished)} finished trials)")
    axes.grid(True, alpha=0.3)
    return figure


def _entropy_table(results: SweepResults, summaries: dict[str, pd.DataFrame], others: list[str]) -> Table:
    objective = results.info.objective or ""
    rows = []
    for index, row in summaries[H_Z].iterrows():  # the same groups, in the same order, for every metric
        cells = [format_mean_std(summaries[m].loc[index, "mean"], summaries[m].loc[index, "std"], int(summaries[m].loc[index, "n"]))
                 for m in summaries]
        labels = [format_value(row[config_column(axis)]) for axis in others]
        rows.append([*labels, beta_label(float(row[config_column("beta")]), objective), *cells])
    header = [*others, "beta", *(f"`{m}`" for m in summaries)]
    return Table("Final k-NN H(Z) on the test batches, its bias and the corrected value: mean ± sample std over seeds (n)",
                 header, rows)
