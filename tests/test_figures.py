"""Every report's figures read at a glance, checked from the matplotlib objects that were saved.

Each report kind is built on a small fake results directory (the parquet writers of
tests/test_reports*.py, no Ray), with ``save_figure`` wrapped so that every figure is kept as it
was written; each is then drawn again with Agg and checked: no legend covers a title, an axes (its
data, ticks or labels) or leaves the figure; a beta axis has its ticks at the swept betas and
nowhere else, with labels that do not run into each other; neighbouring beta colours are far
apart (CIE76 delta-E) and a beta has one colour in every figure of a report; every legend line
looks like a drawn line (colour, marker, marker face, line style). Rebuilding a report from the
same parquet gives the same bytes.
"""

from __future__ import annotations

import itertools
import sys
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from orchestrator.reports import build_reports, load_results, report_names  # noqa: E402
from orchestrator.reports.figures import beta_colors, save_figure, tick_label  # noqa: E402
from tests import test_reports, test_reports_conditioning, test_reports_contrastive, test_reports_robustness  # noqa: E402
from trainables.objectives import slices  # noqa: E402

KNN_BETAS = [0.0, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9]  # seven betas in a legend, close on a symlog axis
MANY_BETAS = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 4.0, 8.0, 32.0]  # a colour bar, dense ticks
INFO_PLANE_FROM = 1e-3  # the fake vib sweep logs the information plane only from this beta on


def _rewrite(path: Path, change) -> None:
    """Apply ``change`` to the frame of the parquet file at ``path``, keeping its sweep metadata."""
    table = pq.read_table(path)
    frame = change(table.to_pandas())
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata), path)


def _with_info_plane(frame):
    """tests/test_info_plane.py's columns, but none for beta = 0: the info plane draws a subset of the betas."""
    logged = frame["config/beta"] >= INFO_PLANE_FROM
    frame["infoplane/izx_bits"] = (10.0 / (1 + 10 * frame["config/beta"]) + frame["epoch"]).where(logged)
    frame["infoplane/hyz_bits"] = (3.0 / frame["epoch"] + frame["config/beta"]).where(logged)
    frame["infoplane/izx_floor_bits"] = 0.5 * frame["config/latent_dim"]
    frame["infoplane/knn_bias_bits"] = 0.75 * frame["config/latent_dim"] + 0.5 * frame["config/seed"]
    frame["infoplane/rate_bits"] = 2 * frame["infoplane/izx_bits"]
    return frame


def _with_knn_columns(frame):
    """tests/test_knn_ib.py's decoder accuracies and k-NN bias, without importing torch."""
    frame["decoder/resfc_acc"] = frame["test/acc"]
    frame["decoder/gmm_acc"] = frame["test/acc"] - 0.01
    frame["test/h_z_knn_bias_bits"] = frame["config/latent_dim"] / 2 + frame["config/seed"]
    return frame


def _write_sweeps(root: Path) -> dict[str, Path]:
    """One small results directory per kind of report."""
    vib = test_reports.write_fake_sweep(root / "vib")
    _rewrite(vib / "epochs.parquet", _with_info_plane)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_reports, "BETAS", KNN_BETAS)
        knn = test_reports.write_fake_sweep(root / "knn", sweep={**test_reports.SWEEP, "name": "knn_ib_digits", "objective": "knn_ib",
                                                                  "reports": ["knn_decoders"]})
        patch.setattr(test_reports, "BETAS", MANY_BETAS)
        many = test_reports.write_fake_sweep(root / "many")
    _rewrite(knn / "final.parquet", _with_knn_columns)
    infomax = root / "infomax"
    infomax.mkdir()
    test_reports_conditioning.write_results(infomax)
    return {
        "vib": vib,
        "dib": test_reports_robustness.write_fake_sweep(root / "dib", cw_l2=True),
        "knn": knn,
        "many": many,
        "simclr": test_reports_contrastive.write_simclr(root / "simclr"),
        "hybrid": test_reports_contrastive.write_hybrid(root / "hybrid"),
        "infomax": infomax,
    }


@contextmanager
def kept_figures():
    """Every figure the reports save, by file name, while they still write their PNGs.

    ``save_figure`` is wrapped where the reports call it: in each module of the package and each
    slice's report module (``trainables/objectives/<name>/report.py``) that imported it.
    """
    kept = {}
    report_names()  # imports all of them
    names = {name for name in sys.modules if name.startswith("orchestrator.reports.")}
    names |= {piece.report for piece in slices().values() if piece.report}
    modules = [sys.modules[name] for name in sorted(names) if getattr(sys.modules[name], "save_figure", None) is save_figure]
    with pytest.MonkeyPatch.context() as patch:
        for module in modules:
            original = module.save_figure

            def keep(figure, path, original=original):
                original(figure, path)
                kept[path.name] = figure

            patch.setattr(module, "save_figure", keep)
        yield kept


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``{sweep: (results directory, {file name: Figure})}`` for every fake sweep, reports built."""
    directories = _write_sweeps(tmp_path_factory.mktemp("figures"))
    built = {}
    for sweep, directory in directories.items():
        with kept_figures() as figures:
            build_reports(directory)
        built[sweep] = (directory, figures)
    return built


_RENDERERS: dict[int, object] = {}  # by id of the figure, which the module's fixture keeps alive


def _drawn(figure):
    """The renderer that drew ``figure`` with Agg, laid out as it was saved (drawn once per figure)."""
    if id(figure) not in _RENDERERS:
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        _RENDERERS[id(figure)] = canvas.get_renderer()
    return _RENDERERS[id(figure)]


def _every_figure(built):
    for sweep, (_, figures) in built.items():
        for name, figure in figures.items():
            yield f"{sweep}/{name}", figure


def _titles(figure):
    texts = [figure._suptitle] if figure._suptitle is not None else []
    for axes in figure.axes:
        texts += [axes.title, axes._left_title, axes._right_title]
    return [text for text in texts if text.get_visible() and text.get_text()]


def _legends(figure):
    return list(figure.legends) + [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None]


def _rgb(color) -> tuple[float, ...]:
    return tuple(round(channel, 3) for channel in to_rgba(color)[:3])


def _lab(color) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour."""
    rgb = np.asarray(to_rgba(color)[:3])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e(first, second) -> float:
    """CIE76 colour difference: the Euclidean distance in L*a*b*; about 2.3 is just noticeable."""
    return float(np.linalg.norm(_lab(first) - _lab(second)))


def _beta_legend_colors(figure) -> dict[str, tuple[float, ...]]:
    """``{label: rgb}`` of the entries of a legend titled "beta"."""
    colors = {}
    for legend in _legends(figure):
        if legend.get_title().get_text() == "beta":
            colors.update({line.get_label(): _rgb(line.get_color()) for line in legend.get_lines() if line.get_linestyle() != "None"})
    return colors


# ---- the checks ------------------------------------------------------------------------------

def test_every_report_kind_was_drawn(built):
    names = {sweep: set(figures) for sweep, (_, figures) in built.items()}
    assert {"curves.png", "accuracy_vs_beta.png", "rate_vs_beta.png", "info_plane.png", "info_plane_rate.png"} <= names["vib"]
    assert {"fgsm_curves.png", "cw_l2_curves.png", "spectra.png", "active_dims_vs_beta.png", "bits_per_dim_vs_beta.png"} <= names["dib"]
    assert {"knn_decoders.png", "knn_entropy_vs_beta.png"} <= names["knn"]
    assert {"hybrid_tradeoff.png", "hybrid_curves.png", "interpolation_1.png"} <= names["hybrid"]
    assert names["infomax"] == {"conditioning.png"} and "accuracy_vs_beta.png" in names["simclr"]


def _inside(box, whole) -> bool:
    return whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1


def test_no_legend_covers_a_title_or_an_axes_or_leaves_the_figure(built):
    problems = []
    for name, figure in _every_figure(built):
        renderer = _drawn(figure)
        whole = figure.bbox
        problems += [f"{name}: the title {title.get_text()!r} leaves the figure" for title in _titles(figure)
                     if not _inside(title.get_window_extent(renderer), whole)]
        for legend in _legends(figure):
            box = legend.get_window_extent(renderer)
            if not _inside(box, whole):
                problems.append(f"{name}: the legend {box.bounds} leaves the figure {whole.bounds}")
            for title in _titles(figure):
                if box.overlaps(title.get_window_extent(renderer)):
                    problems.append(f"{name}: the legend covers the title {title.get_text()!r}")
            for axes in figure.axes:
                if axes.get_visible() and box.overlaps(axes.get_tightbbox(renderer)):
                    problems.append(f"{name}: the legend covers the axes {axes.get_title() or axes.get_label()!r} (data, ticks or labels)")
    assert not problems, "\n".join(problems)


def test_a_beta_axis_has_its_ticks_at_the_swept_betas_only(built):
    checked = []
    for sweep, (directory, figures) in built.items():
        finished = load_results(directory).finished
        if "config/beta" not in finished.columns:
            continue
        betas = sorted(float(beta) for beta in finished["config/beta"].dropna().unique())
        for name, figure in figures.items():
            for axes in figure.axes:
                if not axes.get_xlabel().startswith("beta"):
                    continue
                renderer = _drawn(figure)
                checked.append(f"{sweep}/{name}")
                assert list(axes.get_xticks()) == betas, (sweep, name)
                assert not len(axes.xaxis.get_minorticklocs()), (sweep, name)
                low, high = sorted(axes.get_xlim())
                assert low <= betas[0] and betas[-1] <= high, (sweep, name)
                labels = axes.get_xticklabels()
                texts = [label.get_text() for label in labels]
                assert texts[0] == tick_label(betas[0]) and texts[-1] == tick_label(betas[-1]), (sweep, name, texts)
                assert all(text in ("", tick_label(beta)) for text, beta in zip(texts, betas)), (sweep, name, texts)
                shown = [label.get_window_extent(renderer) for label in labels if label.get_text()]
                assert all(not a.overlaps(b) for a, b in itertools.combinations(shown, 2)), (sweep, name, texts)
    # versus beta in vib (2), dib (4), knn (2 decoders + entropy), many (2), simclr (2)
    assert len(checked) == 12, checked
    assert any(text == "" for text in (label.get_text() for label in built["many"][1]["accuracy_vs_beta.png"].axes[0].get_xticklabels()))


def test_many_betas_get_a_colour_bar_labelled_with_the_swept_betas(built):
    figure = built["many"][1]["curves.png"]
    renderer = _drawn(figure)
    (bar,) = [axes for axes in figure.axes if hasattr(axes, "_colorbar")]
    assert list(bar.get_yticks()) == list(range(len(MANY_BETAS)))
    texts = [label.get_text() for label in bar.get_yticklabels()]
    assert texts[0] == "0" and texts[-1] == "32"
    assert all(text in ("", tick_label(beta)) for text, beta in zip(texts, MANY_BETAS)), texts
    shown = [label.get_window_extent(renderer) for label in bar.get_yticklabels() if label.get_text()]
    assert len(shown) >= 4 and all(not a.overlaps(b) for a, b in itertools.combinations(shown, 2))
    colors = bar._colorbar.cmap.colors
    assert len(colors) == len(MANY_BETAS) and all(delta_e(a, b) > 10 for a, b in zip(colors, colors[1:]))


@pytest.mark.parametrize("count", range(2, 16))
def test_neighbouring_beta_colours_are_far_apart(count):
    colors = beta_colors([float(index) for index in range(count)]).colors
    least = min(delta_e(a, b) for a, b in zip(colors, colors[1:]))
    assert least > (40 if count <= 10 else 10), f"{count} betas: neighbours {least:.1f} apart in CIE76 delta-E"


def test_viridis_sampled_evenly_would_put_seven_betas_about_20_apart():
    """The number orchestrator/reports/figures.py gives for why the betas are not coloured so."""
    palette = matplotlib.colormaps["viridis"]
    colors = [palette(0.9 * index / 6) for index in range(7)]
    assert min(delta_e(a, b) for a, b in zip(colors, colors[1:])) == pytest.approx(20, abs=0.5)


def test_the_legends_colours_are_those_neighbours(built):
    longest = 0
    for name, figure in _every_figure(built):
        colors = list(_beta_legend_colors(figure).values())
        longest = max(longest, len(colors))
        assert all(delta_e(a, b) > 40 for a, b in zip(colors, colors[1:])), name
    assert longest == len(KNN_BETAS)


def test_a_beta_has_one_colour_in_every_figure_of_a_report(built):
    for sweep in ("vib", "dib"):
        seen: dict[str, set] = {}
        for name, figure in built[sweep][1].items():
            for label, color in _beta_legend_colors(figure).items():
                seen.setdefault(label, set()).add(color)
        assert len(seen) >= 3 and all(len(colors) == 1 for colors in seen.values()), (sweep, seen)
    # the info plane draws betas from 1e-3 on only, and still in the colours of the learning curves
    curves, plane = (_beta_legend_colors(built["vib"][1][name]) for name in ("curves.png", "info_plane.png"))
    assert "CE (beta=0)" not in plane and all(plane[label] == curves[label] for label in plane)


def test_every_legend_line_looks_like_a_drawn_line(built):
    problems = []
    for name, figure in _every_figure(built):
        markers, linestyles = set(), set()
        for axes in figure.axes:
            for line in axes.get_lines():
                color = _rgb(line.get_color())
                markers.add((color, line.get_marker(), _rgb(line.get_markerfacecolor())))
                linestyles.add((color, line.get_linestyle()))
            for collection in axes.collections:
                if isinstance(collection, LineCollection):
                    solid = all(style == (0, None) for style in collection.get_linestyles())
                    linestyles.update((_rgb(color), "-" if solid else "dashed") for color in collection.get_colors())
        for legend in _legends(figure):
            for line in legend.get_lines():
                color, marker, style = _rgb(line.get_color()), line.get_marker(), line.get_linestyle()
                if marker not in ("None", "", None) and (color, marker, _rgb(line.get_markerfacecolor())) not in markers:
                    problems.append(f"{name}: {line.get_label()!r}: no drawn marker {marker!r} in {color}")
                if style != "None" and (color, style) not in linestyles:
                    problems.append(f"{name}: {line.get_label()!r}: no drawn line {style!r} in {color}")
    assert not problems, "\n".join(problems)


def test_a_report_rebuilt_from_the_same_parquet_has_the_same_bytes(built, tmp_path):
    directory = built["vib"][0]
    again = build_reports(directory, tmp_path / "again").parent
    first = directory / "reports"
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(path.name for path in again.iterdir()) and "report.md" in names
    for file_name in names:
        assert (first / file_name).read_bytes() == (again / file_name).read_bytes(), file_name


def test_tick_labels_are_short():
    assert [tick_label(value) for value in (0.0, 0.5, 32.0, 1e-3, 1e-9, 1e12)] == ["0", "0.5", "32", "0.001", "1e-9", "1e12"]
