"""Registry of objectives: ``name -> Objective subclass``.

A new objective is one module in this package that decorates its class with
``@register_objective("name")``; every module here is imported on first lookup, so nothing else
needs editing. Tests are parametrised over :data:`OBJECTIVES`.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from trainables.objectives.base import Objective

OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(name: str):
    """Class decorator that registers an objective under ``name``."""

    def decorator(cls: type[Objective]) -> type[Objective]:
        if name in OBJECTIVES and OBJECTIVES[name] is not cls:
            raise ValueError(f"objective {name!r} is registered twice: {OBJECTIVES[name]} and {cls}")
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return decorator


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def objective_names() -> list[str]:
    _import_all()
    return sorted(OBJECTIVES)


def build_objective(config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Objective:
    """Build the objective named by ``config["objective"]``.

    Imports the module of that name first (a trial's process then never imports the other
    objectives' dependencies: CompressAI alone takes over a second), and all of them only if the
    name is not registered after that.
    """
    name = config["objective"]
    if name not in OBJECTIVES and isinstance(name, str) and name.isidentifier():
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    if name not in OBJECTIVES:
        _import_all()
    if name not in OBJECTIVES:
        close = difflib.get_close_matches(str(name), OBJECTIVES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown objective {name!r}: expected one of {', '.join(sorted(OBJECTIVES))}{hint}")
    return OBJECTIVES[name](config, input_shape, num_classes)
