"""Reports: a sweep's parquet results -> figures and tables in ``report.md`` and ``report.html``.

A report is a function ``(results: SweepResults, out_dir: Path) -> list[Section]`` registered with
``@register_report("name")``; it writes its PNG figures into ``out_dir`` and returns the sections
that describe them. The generic reports are modules of this package (``versus_beta``,
``robustness``, ``info_plane``); an objective's own panels live in its slice,
``trainables/objectives/<name>/report.py``. Every module here and every slice's report module is
imported on first lookup, so a new report is one new module and nothing else. The sweep's metadata
names the reports to run (``reports``); :func:`build_reports` runs them after the sweep header and
the learning curves (``overview``), which every report file starts with. The shared parts: ``data``
(the parquet files loaded, summaries over seeds, cells and labels), ``figures`` (colours, axes,
legends, saving) and ``document`` (sections rendered to markdown and HTML). ``docs/results.md``
documents the input.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from orchestrator.reports.data import SweepInfo, SweepResults, load_results
from orchestrator.reports.document import FigureFile, Section, Table, render_html, render_markdown, write_atomic
from orchestrator.reports.overview import overview_sections
from trainables.objectives import slices

__all__ = [
    "REPORTS",
    "FigureFile",
    "Section",
    "SweepInfo",
    "SweepResults",
    "Table",
    "build_reports",
    "load_results",
    "register_report",
    "report_names",
    "resolve_reports",
]

ReportFunction = Callable[[SweepResults, Path], list[Section]]

REPORTS: dict[str, ReportFunction] = {}

REPORT_FILE = "report.md"
HTML_FILE = "report.html"


def register_report(name: str) -> Callable[[ReportFunction], ReportFunction]:
    """Function decorator that registers a report under ``name``."""

    def decorator(function: ReportFunction) -> ReportFunction:
        if name in REPORTS and REPORTS[name] is not function:
            raise ValueError(f"report {name!r} is registered twice: {REPORTS[name].__module__} and {function.__module__}")
        REPORTS[name] = function
        return function

    return decorator


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    for piece in slices().values():  # each objective's own panels live in its slice
        if piece.report:
            importlib.import_module(piece.report)


def report_names() -> list[str]:
    """The names of every registered report, sorted."""
    _import_all()
    return sorted(REPORTS)


def resolve_reports(names: list[str] | tuple[str, ...]) -> list[ReportFunction]:
    """The report functions for ``names`` (duplicates dropped); ``ValueError`` for an unknown name."""
    _import_all()
    for name in names:
        if name not in REPORTS:
            close = difflib.get_close_matches(str(name), REPORTS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown report {name!r}: expected one of {', '.join(sorted(REPORTS))}{hint}")
    return [REPORTS[name] for name in dict.fromkeys(names)]


def build_reports(results_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Rebuild every report of the sweep in ``results_dir`` from its parquet files alone.

    Runs the sweep header and learning curves, then each report named in the metadata's
    ``reports`` (and ``info_plane`` when the epochs carry its columns), and writes ``report.md``
    and ``report.html`` with the PNG figures beside them in ``out_dir`` (default
    ``results_dir/reports``). Every file is written atomically; ``report.md``
    is written last, so it exists only when every report succeeded.

    Returns:
        The path of ``report.md``.

    Raises:
        FileNotFoundError: ``results_dir`` or one of its parquet files is missing.
        ValueError: the files or their metadata are malformed, or a report name is unknown.
    """
    results = load_results(results_dir)
    names = list(results.info.reports)
    if "info_plane" not in names and {"infoplane/izx_bits", "infoplane/hyz_bits"} <= set(results.epochs.columns):
        names.append("info_plane")  # any sweep whose trials logged it (infoplane_every > 0) gets one
    functions = resolve_reports(names)
    out = Path(out_dir) if out_dir is not None else results.directory / "reports"
    out.mkdir(parents=True, exist_ok=True)

    from orchestrator.claims import claims_section  # imports every sweep's claims, which import the registries

    sections = [claims_section(results), *overview_sections(results, out)]
    for function in functions:
        sections.extend(function(results, out))
    title = f"Sweep {results.info.name}" + (f" ({results.info.run_name})" if results.info.run_name else "")
    write_atomic(out / HTML_FILE, render_html(title, sections))
    write_atomic(out / REPORT_FILE, render_markdown(title, sections))
    return out / REPORT_FILE
