"""Registry of objectives: ``name -> ObjectiveSlice``.

An objective is one slice, a package ``trainables/objectives/<name>/`` whose ``__init__.py`` defines ``SLICE``:
its typed config (``config.py``, torch-free), its model (``model.py``, the ``nn.Module``, imported only inside a
trial) and its report panels (``report.py``, imported only on the driver). Its sweeps stay in
``search_spaces/<family>.py``. Another package adds an objective through the entry-point group
``ib_sweeps.objectives``: each entry point names an :class:`ObjectiveSlice` object, which may name its own sweeps
module. docs/extending.md walks through adding one.

This module imports neither torch nor Ray, so the driver can read every objective's declaration.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainables.config import Config, TrialConfig, parse_trial

if TYPE_CHECKING:
    from trainables.objectives.base import Objective

ENTRY_POINT_GROUP = "ib_sweeps.objectives"


@dataclass(frozen=True)
class ObjectiveSlice:
    """One objective's parts, named so that each side imports only its own.

    ``model`` is ``"module:Class"``, an :class:`~trainables.objectives.base.Objective` subclass built as
    ``Class(trial, input_shape, num_classes)``. ``report`` is a module that registers report panels with
    :func:`orchestrator.reports.register_report`; ``sweeps`` a module that registers sweeps with
    :func:`search_spaces.register_sweep` (ours live in ``search_spaces``, which imports all of them).
    """

    name: str
    config: type[Config]
    model: str
    report: str | None = None
    sweeps: str | None = None
    source: str = "ib-sweeps"  # the distribution that provides it (``--list`` shows it for plugins)


_SLICES: dict[str, ObjectiveSlice] = {}


def _register(found: dict[str, ObjectiveSlice], piece: ObjectiveSlice, where: str) -> None:
    if not isinstance(piece, ObjectiveSlice):
        raise ValueError(f"{where}: expected an ObjectiveSlice, got {type(piece).__name__}")
    if piece.name in found and found[piece.name] != piece:
        raise ValueError(f"objective {piece.name!r} is registered twice: by {found[piece.name].source} and {where}")
    piece.config.OWNER = piece.name
    found[piece.name] = piece


def slices() -> dict[str, ObjectiveSlice]:
    """Every objective: the packages in this folder, then the entry points of installed distributions."""
    if not _SLICES:
        found: dict[str, ObjectiveSlice] = {}  # filled completely before it is kept: a broken plugin leaves nothing
        for module in pkgutil.iter_modules(__path__):
            if module.ispkg:
                name = f"{__name__}.{module.name}"
                _register(found, importlib.import_module(name).SLICE, name)
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                piece = entry.load()
            except Exception as error:  # a broken plugin is named, not a traceback from deep inside importlib
                raise ValueError(f"entry point {entry.name} = {entry.value!r} (group {ENTRY_POINT_GROUP}) failed to "
                                 f"load: {type(error).__name__}: {error}") from error
            if isinstance(piece, ObjectiveSlice) and entry.dist is not None:
                piece = dataclasses.replace(piece, source=entry.dist.name)
            _register(found, piece, f"entry point {entry.name} = {entry.value!r}")
        _SLICES.update(found)
    return _SLICES


def objective_names() -> list[str]:
    return sorted(slices())


def get_slice(name: Any) -> ObjectiveSlice:
    """The slice called ``name``; ValueError with close matches if there is none."""
    known = slices()
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"objective {name!r}: expected one of {', '.join(sorted(known))}{hint}")
    return known[name]


def model_class(name: str) -> type[Objective]:
    """Import the model of objective ``name`` (torch, and only this objective's dependencies)."""
    module, _, attribute = get_slice(name).model.partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_objective(trial: TrialConfig | Mapping[str, Any], input_shape: tuple[int, ...],
                    num_classes: int) -> Objective:
    """Build the objective of ``trial`` (a flat config is parsed first)."""
    if not isinstance(trial, TrialConfig):
        trial = parse_trial(trial)
    return model_class(trial.objective)(trial, input_shape, num_classes)
