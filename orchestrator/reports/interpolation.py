"""Report ``interpolation``: the hybrid bound's latent interpolations (Sinha et al., Figures 2-4).

Rebuilds the images from the ``interpolation`` rows of ``evaluations.parquet`` (written by
:meth:`trainables.objectives.hybrid.HybridBound.interpolation_rows`: five ``grid_shape`` rows give
the shape ``(pairs, steps, C, H, W)``, and one row per pixel of each mode, ``index`` its flat
position) and draws ``interpolation_<k>.png`` per configuration of the swept axes (its
lowest-seed finished trial): the whole latent interpolated, only its first (contrastive) half,
only its second half. A table gives how far each interpolation moves the decoded image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from orchestrator.reports import register_report
from orchestrator.reports.common import SweepResults, config_column, format_value
from orchestrator.reports.document import FigureFile, Section, Table, save_figure
from orchestrator.reports.evaluation_data import absent_sentence, evaluation_rows

INTERPOLATION_MODES = (("whole", "whole latent"), ("first_half", "first (contrastive) half only"),
                       ("second_half", "second half only"))


@register_report("interpolation")
def interpolation(results: SweepResults, out_dir: Path) -> list[Section]:
    """One ``interpolation_<k>.png`` per configuration, and how far each interpolation moves the image."""
    title = "Latent interpolations (Sinha et al., Figures 2-4)"
    absent = absent_sentence(results, "interpolation figure")
    if absent:
        return [Section(title, [absent])]
    rows = evaluation_rows(results, "interpolation")
    if rows.empty:
        return [Section(title, ["`evaluations.parquet` has no `interpolation` rows of a finished trial, so there is no figure."])]
    seeds = results.final.set_index("trial_id")[config_column("seed")] if config_column("seed") in results.final.columns else None
    figures, movement = [], []
    for number, (configuration, group) in enumerate(sorted(rows.groupby("configuration"), key=lambda item: item[0]), start=1):
        trial_ids = sorted(group["trial_id"].unique(), key=lambda t: (seeds.get(t, 0) if seeds is not None else 0, t))
        trial_id = trial_ids[0]
        images = _images(group[group["trial_id"] == trial_id])
        if images is None:
            continue
        name = f"interpolation_{number}.png"
        save_figure(_interpolation_figure(images, f"{results.info.name}: {configuration}"), out_dir / name)
        seed = f"seed {format_value(seeds.get(trial_id))}, " if seeds is not None else ""
        pairs, steps = images["whole"].shape[:2]
        figures.append(FigureFile(name, f"{configuration} ({seed}trial `{trial_id}`): {pairs} pairs of test images (rows; "
                                  f"the first test image of class 2p to that of class 2p + 1), {steps} steps from t = 0 to 1 "
                                  "(columns), decoded after interpolating the whole latent (left), only its first, "
                                  "contrastive half (middle), only its second half (right)."))
        change = [f"{np.abs(images[m][:, -1] - images[m][:, 0]).mean():.4f}" for m, _ in INTERPOLATION_MODES]
        movement.append([configuration, *change])
    paragraphs = [
        "The paper reads these figures as: the contrastive half carries little of what the decoder draws (images stay "
        "close to the start image when only it moves), the other half most of it. The table measures that: the mean "
        "absolute pixel difference (pixels in [0, 1]) between the last and the first image of each interpolation."
    ]
    table = Table("Mean |x(t=1) - x(t=0)| per interpolation, averaged over pairs and pixels",
                  ["configuration", *(label for _, label in INTERPOLATION_MODES)], movement)
    return [Section(title, paragraphs, figures, [table])]


def _images(rows: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """``{mode: (pairs, steps, C, H, W)}`` from one trial's rows; None if they are incomplete."""
    shape_rows = rows[rows["metric"] == "grid_shape"].sort_values("index")
    if len(shape_rows) != 5:
        return None
    shape = tuple(int(v) for v in shape_rows["value"])
    images = {}
    for mode, _ in INTERPOLATION_MODES:
        values = rows[rows["metric"] == mode].sort_values("index")["value"].to_numpy(dtype=float)
        if len(values) != np.prod(shape):
            return None
        images[mode] = values.reshape(shape)
    return images


def _mosaic(images: np.ndarray) -> np.ndarray:
    """(pairs, steps, C, H, W) -> one (rows, columns[, 3]) picture with 1-pixel mid-grey gaps."""
    pairs, steps, channels, height, width = images.shape
    canvas = np.full((pairs * (height + 1) - 1, steps * (width + 1) - 1, channels), 0.5)
    for p in range(pairs):
        for s in range(steps):
            canvas[p * (height + 1): p * (height + 1) + height, s * (width + 1): s * (width + 1) + width] = images[p, s].transpose(1, 2, 0)
    return canvas[..., 0] if channels == 1 else canvas


def _interpolation_figure(images: dict[str, np.ndarray], title: str) -> Figure:
    mosaics = {mode: _mosaic(np.clip(images[mode], 0, 1)) for mode, _ in INTERPOLATION_MODES}
    height, width = mosaics["whole"].shape[:2]
    panel_width = 4.2
    figure = Figure(figsize=(3 * panel_width + 0.4, panel_width * height / width + 0.9), layout="constrained")
    for panel, (mode, label) in zip(figure.subplots(1, 3), INTERPOLATION_MODES):
        mosaic = mosaics[mode]
        panel.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        panel.set_title(label, fontsize="medium")
        panel.set_xticks([])
        panel.set_yticks([])
    figure.suptitle(re.sub(r"\s+", " ", title))
    return figure
