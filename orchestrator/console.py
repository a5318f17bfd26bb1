"""What reaches the console during a sweep: the project's lines there, Ray's and MLflow's in a log file.

The driver hosts Ray, Ray Tune, MLflow (with SQLAlchemy and alembic under it) and, for
``--search optuna``, Optuna; each logs to the console by default: Ray's token-authentication notice,
Tune's configuration box and slow-callback warnings, MLflow's schema-creation lines, Tune's
``Failed to fetch metrics`` warnings on a resume. :func:`quiet` sends all of it to
``<run dir>/sweep.log`` and leaves the console to the project's own lines (``orchestrator.progress``
and the driver's summary). What still reaches the console from those libraries is an error, once,
in one line that points at the log; the project's own warnings (MLflow unreachable, and back) are
shown once each. Before the run directory may be written (while the command line is checked),
:func:`hold` keeps the libraries' records in memory; :func:`quiet` writes them to the log first.

A terminal also gets a live region (:class:`LiveRegion`): the last few lines of the screen,
redrawn in place by ``orchestrator.progress``; every other line printed through :func:`say` goes
above it, so the two never overwrite each other.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path
from typing import TextIO

LOG_FILE = "sweep.log"
# Loggers of the libraries the driver hosts; their records go to the log file only.
LIBRARY_LOGGERS = ("ray", "mlflow", "alembic", "sqlalchemy", "huey", "urllib3", "optuna", "filelock", "matplotlib")
PROJECT_LOGGERS = ("orchestrator", "search_spaces")
# Set (unless the user set them) before Ray starts; each removes console output at its source.
ENVIRONMENT = {
    # Tune's new output engine prints a configuration box and a results path even at verbose=0;
    # the legacy engine at verbosity 0 prints nothing (ray/tune/experimental/output.py, tune.py).
    "RAY_AIR_NEW_OUTPUT": "0",
    # a warning whenever syncing the experiment state is slow; the state is on local disk here
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # no TensorBoard logger (and no warning when tensorboardX is absent): MLflow is the dashboard;
    # the CSV and JSON loggers results.py reads are passed by tuner.build_tuner
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}
# Library errors that the progress lines already report: not repeated on the console.
SHOWN_BY_PROGRESS = ("Trial task failed", "Trials did not complete")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_log_path: Path | None = None
_holding = False  # hold() was called and quiet() not yet
_region: LiveRegion | None = None
_write_lock = threading.RLock()  # the MLflow delivery thread warns while the driver draws


def hold() -> None:
    """Keep the libraries' logging and warnings in memory until :func:`quiet` names the log file.

    For the checks before a sweep may write anything (creating the MLflow store logs its schema
    migrations): the records reach the log if the sweep starts, and nothing if a check fails.
    Errors still reach the console at once.
    """
    global _holding
    _holding = True
    _prepare()
    reroute()
    _install_warning_filter()


def quiet(run_dir: Path) -> Path:
    """Route the libraries' logging and warnings to ``run_dir/sweep.log``; return that path.

    Call it in the driver before ``ray.init``: some of the environment it sets is read when Ray
    and Tune start. Prints the log's path, so the console says where the libraries' messages went;
    records held by :func:`hold` are written first. Calling it again for the same run directory
    changes nothing; for another (another sweep in the same process), it moves the log.
    """
    global _log_path, _holding
    path = Path(run_dir) / LOG_FILE
    if path == _log_path:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _prepare()
    _log_path, _holding = path, False
    reroute()
    _install_warning_filter()
    for record in _HELD.records:
        _file_handler(path).handle(record)
    _HELD.records.clear()
    for earlier in [p for p in _handlers if p != path]:  # an earlier sweep's log, in the same process
        _handlers.pop(earlier).close()
    say(f"log:     {path}  (Ray's and MLflow's messages)")
    return path


def _prepare() -> None:
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    _import_configuring_libraries()
    _drop_colorama_reset()


def log_path() -> Path | None:
    """The current sweep's log file, or None when :func:`quiet` has not been called."""
    return _log_path


def reroute() -> None:
    """Apply the routing again; libraries that configure their loggers on first use undo it.

    A no-op until :func:`hold` or :func:`quiet` has been called. ``orchestrator.progress`` calls it
    when the sweep starts, after Tune has imported its searcher and loggers.
    """
    if not _routing():
        return
    file_handler = _sink()
    names = set(logging.root.manager.loggerDict)
    for top in LIBRARY_LOGGERS:
        for name in [top, *(n for n in names if n.startswith(top + "."))]:
            logger = logging.getLogger(name)
            logger.handlers = [h for h in logger.handlers if _keeps(h)]
            if name == top or not logger.propagate:  # a child that propagates reaches top's handlers
                logger.handlers += [file_handler, _LIBRARY_CONSOLE]
        logging.getLogger(top).propagate = False
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if _keeps(h)] + [file_handler, _PROJECT_CONSOLE]
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)  # the log file gets the project's info lines too


# ---- the console itself -------------------------------------------------------------------

class LiveRegion:
    """The bottom lines of a terminal, redrawn in place; lines printed meanwhile go above it."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lines: list[str] = []
        self._height = 0  # lines of the region now on the screen

    def show(self, lines: list[str]) -> None:
        """Replace the region's lines (cut to the terminal's width, so none wraps)."""
        with _write_lock:
            width = max(20, shutil.get_terminal_size().columns - 1)
            self.lines = [line[:width] for line in lines]
            self._erase()
            self._draw()
            self.stream.flush()

    def print_above(self, line: str, stream: TextIO | None = None) -> None:
        """``line`` (on ``stream``, default the region's) above the region, which is redrawn below it."""
        with _write_lock:
            self._erase()
            self.stream.flush()
            target = stream or self.stream
            target.write(line + "\n")
            target.flush()
            self._draw()
            self.stream.flush()

    def close(self) -> None:
        """Remove the region from the screen; what was printed above it stays."""
        with _write_lock:
            self._erase()
            self.stream.flush()
            self.lines = []

    def _erase(self) -> None:
        if self._height:  # to the start of the region's first line, then clear to the end of the screen
            self.stream.write(f"\x1b[{self._height}F\x1b[J")
            self._height = 0

    def _draw(self) -> None:
        if self.lines:
            self.stream.write("\n".join(self.lines) + "\n")
        self._height = len(self.lines)


def open_region(stream: TextIO | None = None) -> LiveRegion | None:
    """The live region on ``stream`` (default stdout) if it is a terminal, else None."""
    global _region
    stream = stream or sys.stdout
    if not _is_terminal(stream):
        return None
    if _region is None or _region.stream is not stream:
        _region = LiveRegion(stream)
    return _region


def close_region() -> None:
    global _region
    if _region is not None:
        _region.close()
    _region = None


def say(line: str, stream: TextIO | None = None) -> None:
    """Print one line of the project's own, above the live region when one is shown."""
    stream = stream or sys.stdout
    with _write_lock:
        if _region is not None and _region.lines:
            _region.print_above(line, stream)
        else:
            print(line, file=stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---- routing ------------------------------------------------------------------------------

def _routing() -> bool:
    return _holding or _log_path is not None


def _sink() -> logging.Handler:
    """Where the libraries' records go: the log file, or memory until there is one."""
    return _file_handler(_log_path) if _log_path is not None else _HELD


class _HeldRecords(logging.Handler):
    """Records kept until the log file exists (see :func:`hold`)."""

    def __init__(self):
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _ConsoleHandler(logging.Handler):
    """One line on stderr per distinct message, pointing at the log for the rest.

    On a library logger it passes errors only (its warnings are the chatter this module exists to
    keep off the console), and not those the progress lines already report. Its text does not
    depend on a formatter: ``ray.init`` replaces the formatters of the ``ray`` logger's handlers.
    """

    def __init__(self, level: int = logging.ERROR):
        super().__init__(level)
        self._seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().strip()
        except Exception:  # a malformed record: the file handler has it
            return
        first = message.splitlines()[0] if message else record.name
        if record.name.split(".")[0] in LIBRARY_LOGGERS and first.startswith(SHOWN_BY_PROGRESS):
            return
        if first in self._seen:
            return
        self._seen.add(first)
        kind = "error" if record.levelno >= logging.ERROR else "warning"
        more = f" (details: {_log_path})" if _log_path is not None and (message != first or record.exc_info) else ""
        say(f"{kind}: {first[:300]}{more}", sys.stderr)


_HELD = _HeldRecords()
_LIBRARY_CONSOLE = _ConsoleHandler(logging.ERROR)
_PROJECT_CONSOLE = _ConsoleHandler(logging.WARNING)
_handlers: dict[Path, logging.FileHandler] = {}


class _LogFile(logging.FileHandler):
    """The sweep's log, in one format: ``ray.init`` sets the formatter of every handler of the
    ``ray`` logger to Ray's own, which names no logger."""

    def __init__(self, path: Path):
        super().__init__(path, mode="a", encoding="utf-8")
        self.formatter = logging.Formatter(LOG_FORMAT)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        pass


def _file_handler(path: Path) -> logging.FileHandler:
    if path not in _handlers:
        _handlers[path] = _LogFile(path)
    return _handlers[path]


def _keeps(handler: logging.Handler) -> bool:
    """A library's own file handlers stay; console handlers, and ours from an earlier call, go."""
    if isinstance(handler, (_ConsoleHandler, _HeldRecords)) or handler in _handlers.values():
        return False
    return isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler)


def _import_configuring_libraries() -> None:
    """Import what configures its loggers at import time, so that :func:`reroute` comes after it."""
    import mlflow  # noqa: F401 - its loggers: mlflow, alembic, sqlalchemy.engine, huey
    import ray  # noqa: F401 - the ``ray`` logger's stderr handler
    import ray.autoscaler._private.cli_logger  # noqa: F401 - see _drop_colorama_reset
    import ray.tune  # noqa: F401


def _drop_colorama_reset() -> None:
    """Ray's ``cli_logger`` calls ``colorama.init(strip=False)``, whose exit hook writes ``ESC[0m``
    to a terminal after the sweep's last line; nothing here prints colour, so nothing is reset."""
    initialise = sys.modules.get("colorama.initialise")
    if initialise is not None and hasattr(initialise, "reset_all"):
        atexit.unregister(initialise.reset_all)


_original_showwarning = warnings.showwarning


def _install_warning_filter() -> None:
    """Python warnings raised in the libraries' code go to the log; the project's stay on stderr."""
    library_warnings = logging.getLogger("py.warnings.libraries")
    library_warnings.handlers = [_sink()] if _routing() else []
    library_warnings.propagate = False
    if getattr(warnings.showwarning, "routes_to_log", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        roots = tuple(root for root in map(_package_dir, LIBRARY_LOGGERS + ("pydantic",)) if root)
        from_library = str(filename).startswith(roots) or category.__module__.split(".")[0] in LIBRARY_LOGGERS
        if from_library and _routing():
            text = warnings.formatwarning(message, category, filename, lineno, line)
            library_warnings.warning("%s", text.rstrip())
            return
        _original_showwarning(message, category, filename, lineno, file, line)

    showwarning.routes_to_log = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def _package_dir(name: str) -> str | None:
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    return str(Path(file).parent) + os.sep if file else None
