"""Registry of sweeps: ``name -> SweepSpec``.

Each family module in this package registers its sweeps with :func:`register_sweep` (an objective's config keys
are declared in its slice, ``trainables/objectives/<name>/config.py``). Every module here is imported on first
lookup, and then the sweeps module of every objective from another package (its slice's ``sweeps``).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from search_spaces.spec import SweepSpec
from trainables.objectives import slices

SWEEPS: dict[str, SweepSpec] = {}


def register_sweep(spec: SweepSpec) -> SweepSpec:
    """Validate ``spec`` and register it under ``spec.name``; a duplicate name is an error."""
    if spec.name in SWEEPS:
        raise ValueError(f"sweep {spec.name!r} is registered twice")
    spec.validate()
    SWEEPS[spec.name] = spec
    return spec


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "spec":
            importlib.import_module(f"{__name__}.{module.name}")
    for piece in slices().values():
        if piece.sweeps:
            importlib.import_module(piece.sweeps)


def sweep_names() -> list[str]:
    _import_all()
    return sorted(SWEEPS)


def get_sweep(name: str) -> SweepSpec:
    """The registered sweep called ``name``; ValueError with close matches if there is none."""
    _import_all()
    if name not in SWEEPS:
        close = difflib.get_close_matches(name, SWEEPS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown sweep {name!r}{hint} (python -m orchestrator.sweep --list shows all {len(SWEEPS)})")
    return SWEEPS[name]
