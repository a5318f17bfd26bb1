"""Registry of sweeps: ``name -> SweepSpec``.

Each family module in this package declares its objective's config keys with
:func:`~search_spaces.spec.register_objective_defaults` and its sweeps with :func:`register_sweep`.
Every module here is imported on first lookup, so a new family is one new file.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from search_spaces.spec import SweepSpec

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
