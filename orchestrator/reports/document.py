"""What a report returns (sections of text, tables and figures) and how it is rendered and written.

Every report function returns a list of :class:`Section`; :func:`render_markdown` and
:func:`render_html` turn the sections of all reports into ``report.md`` and ``report.html``. The
HTML is self-contained (inline CSS, no scripts) except for the PNG figures, which sit beside it.
Inline code in text, captions and cells is written markdown-style between backticks, and bold
text between double asterisks. Files, figures included
(:func:`orchestrator.reports.figures.save_figure`), are written to a temporary file in the same
directory and moved into place with ``os.replace``, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import html
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """A table as rows of already formatted cells; ``header`` names the columns."""

    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class FigureFile:
    """A PNG figure written beside the report, named by its file name (not a path)."""

    file_name: str
    caption: str


@dataclass(frozen=True)
class Section:
    """One titled part of a report: paragraphs, then figures, then tables."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[FigureFile] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def render_markdown(title: str, sections: list[Section]) -> str:
    """The whole report as GitHub-flavoured markdown."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        for figure in section.figures:
            lines += [f"![{_markdown_alt(figure.caption)}]({figure.file_name})", "", f"*{figure.caption}*", ""]
        for table in section.tables:
            lines += [f"**{table.caption}**", ""]
            lines.append("| " + " | ".join(_markdown_cell(cell) for cell in table.header) + " |")
            lines.append("|" + "---|" * len(table.header))
            for row in table.rows:
                lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
            lines.append("")
    return "\n".join(lines)


def render_html(title: str, sections: list[Section]) -> str:
    """The whole report as one HTML page; figures are ``<img>`` of the PNGs beside it."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts += ["<section>", f"<h2>{_inline_html(section.title)}</h2>"]
        parts += [f"<p>{_inline_html(paragraph)}</p>" for paragraph in section.paragraphs]
        for figure in section.figures:
            parts.append(
                f'<figure><img src="{html.escape(figure.file_name)}" alt="{html.escape(_markdown_alt(figure.caption))}">'
                f"<figcaption>{_inline_html(figure.caption)}</figcaption></figure>"
            )
        for table in section.tables:
            # a wide table (the information plane's ten columns) scrolls inside the text column, not the page
            parts += ['<div class="wide">', "<table>", f"<caption>{_inline_html(table.caption)}</caption>", "<thead><tr>"]
            parts += [f"<th>{_inline_html(cell)}</th>" for cell in table.header]
            parts += ["</tr></thead>", "<tbody>"]
            for row in table.rows:
                parts.append("<tr>" + "".join(f"<td>{_inline_html(cell)}</td>" for cell in row) + "</tr>")
            parts += ["</tbody>", "</table>", "</div>"]
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    # open(..., "xb") rather than tempfile.mkstemp, whose 0600 mode would outlive os.replace;
    # this way the file gets the usual permissions (the umask applies).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-style:italic;font-size:.92em}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.92em}caption{text-align:left;font-weight:bold;padding:.3em 0}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}"
    "code{background:#f3f3f3;padding:0 .2em}.wide{overflow-x:auto}"
)


def _inline_html(text: str) -> str:
    """Escape ``text`` for HTML and turn `code` spans into ``<code>``, **bold** into ``<strong>``."""
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", html.escape(text)))


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_alt(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").replace("`", "")
