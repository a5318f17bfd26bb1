"""SweepSpec: a sweep declared as data, and its validation.

A sweep is one objective on one dataset, a fixed config, and swept axes. Every trial receives a
flat config of JSON scalars (they become MLflow params as they are): the harness's keys
(:mod:`trainables.config`), the objective's own keys (its slice's ``config.py``), and the value of
each swept axis. Validation reads those declarations: every key, every value, and every rule that
spans keys on every trial. This module imports neither torch nor Ray, so the driver can validate a
sweep without importing any model.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainables.config import DATASETS, EVALUATIONS, HARNESS_PARTS, Config, Scalar, close_matches, harness_defaults
from trainables.objectives import get_slice, objective_names

# Every key a trial understands, with its default: the harness's parts and, per objective, its slice's config
# (trainables/config.py and trainables/objectives/<name>/config.py declare them, with what each accepts).
HARNESS_DEFAULTS: dict[str, Scalar] = harness_defaults()

SEARCHES = ("grid", "optuna")
DISTRIBUTIONS = ("uniform", "loguniform", "int")


def declared_keys(objective: str) -> dict[str, type[Config]]:
    """``key -> the config part that declares it`` for a trial of ``objective``."""
    parts = (*HARNESS_PARTS, get_slice(objective).config)
    return {key: part for part in parts for key in part.declared()}


def objective_defaults(objective: str) -> dict[str, Scalar]:
    return get_slice(objective).config.defaults()


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: an objective, a dataset, a fixed config and the axes swept over it.

    ``grid`` maps a config key to the values it takes (the trial grid is their product times
    ``seeds``). ``ranges`` gives Optuna's distribution for an axis, ``(kind, low, high)`` with
    kind in uniform / loguniform / int; an axis without one is categorical over its grid values.
    ``smoke`` holds the config overrides ``--smoke`` applies (``epochs`` among them) and
    ``smoke_grid`` the axes it shrinks, so every sweep has a variant that runs on two CPU cores.
    """

    name: str
    description: str
    paper: str
    objective: str
    dataset: str
    epochs: int
    config: Mapping[str, Scalar] = field(default_factory=dict)
    grid: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[str, float, float]] = field(default_factory=dict)
    metric: str = "test/acc"
    mode: str = "max"
    seeds: tuple[int, ...] = (0,)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2
    evaluations: tuple[str, ...] = ()
    reports: tuple[str, ...] = ("accuracy_vs_beta", "rate_vs_beta")
    smoke: Mapping[str, Scalar] = field(default_factory=dict)
    smoke_grid: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)

    # ---- derived views -------------------------------------------------------------------
    def base_config(self) -> dict[str, Scalar]:
        """The config every trial shares, before the swept axes and the seed are set."""
        return {
            **HARNESS_DEFAULTS,
            **objective_defaults(self.objective),
            **self.config,
            "objective": self.objective,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "evaluations": ",".join(self.evaluations),
        }

    def num_trials(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) * len(self.seeds)

    def trial_configs(self) -> list[dict[str, Scalar]]:
        """The expanded grid: one flat config per trial, seeds innermost."""
        base = self.base_config()
        axes = list(self.grid)
        configs = []
        for values in itertools.product(*(self.grid[a] for a in axes)):
            for seed in self.seeds:
                configs.append({**base, **dict(zip(axes, values)), "seed": seed})
        return configs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with results, compared on ``--resume``)."""
        d = dataclasses.asdict(self)
        d["config"] = dict(self.config)
        d["grid"] = {k: list(v) for k, v in self.grid.items()}
        d["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        d["smoke_grid"] = {k: list(v) for k, v in self.smoke_grid.items()}
        for key in ("seeds", "evaluations", "reports"):
            d[key] = list(d[key])
        return d

    # ---- overrides -----------------------------------------------------------------------
    def with_overrides(
        self,
        sets: Mapping[str, Any] | None = None,
        *,
        epochs: int | None = None,
        seeds: int | None = None,
        smoke: bool = False,
    ) -> SweepSpec:
        """Apply ``--smoke``, then ``--set``, ``--epochs`` and ``--seeds``; return a validated spec.

        A ``--set`` value that is a list becomes (or replaces) a grid axis; a scalar fixes the key
        and removes it from the grid.
        """
        spec = self
        if smoke:
            smoke_config = dict(self.smoke)
            spec = dataclasses.replace(
                spec,
                epochs=smoke_config.pop("epochs", spec.epochs),
                dataset=smoke_config.pop("dataset", spec.dataset),
                config={**spec.config, **smoke_config},
                grid={**spec.grid, **spec.smoke_grid},
                seeds=spec.seeds[:1],
                cpus_per_trial=1.0,  # smoke runs are CPU-sized; --gpus-per-trial puts them on a GPU
                gpus_per_trial=0.0,
            )
        config, grid, ranges, smoke_grid = dict(spec.config), dict(spec.grid), dict(spec.ranges), dict(spec.smoke_grid)
        for key, value in (sets or {}).items():
            if key in ("objective", "epochs", "seed"):
                raise ValueError(f"--set {key}=...: {key!r} cannot be set this way; use "
                                 + {"objective": "another sweep", "epochs": "--epochs N", "seed": "--seeds N"}[key])
            if key == "dataset":
                spec = dataclasses.replace(spec, dataset=value)
                continue
            if key == "evaluations":
                if not isinstance(value, str):
                    raise ValueError(f"--set evaluations={value!r}: expected a comma-separated string, e.g. fgsm,pgd")
                spec = dataclasses.replace(spec, evaluations=tuple(v.strip() for v in value.split(",") if v.strip()))
                continue
            if isinstance(value, list):
                grid[key] = tuple(value)
                config.pop(key, None)
            else:  # a fixed key is no longer an axis of any search
                config[key] = value
                for axes in (grid, ranges, smoke_grid):
                    axes.pop(key, None)
        spec = dataclasses.replace(spec, config=config, grid=grid, ranges=ranges, smoke_grid=smoke_grid)
        if epochs is not None:
            spec = dataclasses.replace(spec, epochs=epochs)
        if seeds is not None:
            if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
                raise ValueError(f"--seeds {seeds!r}: expected a positive integer")
            spec = dataclasses.replace(spec, seeds=tuple(range(seeds)))
        spec.validate()
        return spec

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field and the bad value; never assert."""
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name {self.name!r}: expected letters, digits and underscores")
        if self.objective not in objective_names():
            raise ValueError(f"objective {self.objective!r}: expected one of {', '.join(objective_names())}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset {self.dataset!r}: expected one of {', '.join(DATASETS)}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode {self.mode!r}: expected 'min' or 'max'")
        for name in self.evaluations:
            if name not in EVALUATIONS:
                raise ValueError(f"evaluations: {name!r}: expected any of {', '.join(EVALUATIONS)}")
        if "/" not in self.metric:
            raise ValueError(f"metric {self.metric!r}: expected a name like 'test/acc'")
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("max_failures", self.max_failures, minimum=0)
        if not self.seeds:
            raise ValueError("seeds (): expected at least one seed")
        for seed in self.seeds:
            _check_int("seeds", seed, minimum=0)
        _check_number("cpus_per_trial", self.cpus_per_trial, minimum=0.0)
        _check_number("gpus_per_trial", self.gpus_per_trial, minimum=0.0)
        if self.cpus_per_trial == 0 and self.gpus_per_trial == 0:
            raise ValueError("cpus_per_trial 0 and gpus_per_trial 0: a trial needs at least one of them")

        known = declared_keys(self.objective)
        reserved = {"objective", "dataset", "epochs", "seed", "evaluations"}
        for key, value in self.config.items():
            if key in reserved:
                raise ValueError(f"config key {key!r}: set it as the spec's own field, not in config")
            self._check_value(key, value, known, where="config")
        if not self.grid:
            raise ValueError(f"grid of sweep {self.name!r} is empty: expected at least one swept axis")
        for key, values in self.grid.items():
            if key in reserved:
                raise ValueError(f"grid axis {key!r}: this key cannot be swept")
            if not values:
                raise ValueError(f"grid axis {key!r} is empty: expected at least one value")
            for value in values:
                self._check_value(key, value, known, where=f"grid axis {key!r}")
        for key, dist in self.ranges.items():
            if key not in self.grid:
                raise ValueError(f"ranges key {key!r}: expected one of the grid axes {sorted(self.grid)}")
            if len(dist) != 3 or dist[0] not in DISTRIBUTIONS:
                raise ValueError(f"ranges[{key!r}] = {dist!r}: expected (kind, low, high) with kind in {DISTRIBUTIONS}")
            kind, low, high = dist
            self._check_value(key, low, known, where=f"ranges[{key!r}]")
            self._check_value(key, high, known, where=f"ranges[{key!r}]")
            if not low < high or (kind == "loguniform" and low <= 0):
                raise ValueError(f"ranges[{key!r}] = {dist!r}: expected low < high (and low > 0 for loguniform)")
        for key, value in self.smoke.items():
            if key == "dataset" and value not in DATASETS:
                raise ValueError(f"smoke dataset {value!r}: expected one of {', '.join(DATASETS)}")
            if key not in ("epochs", "dataset"):
                self._check_value(key, value, known, where="smoke")
        for key, values in self.smoke_grid.items():
            if key not in self.grid:
                raise ValueError(f"smoke_grid axis {key!r}: expected one of the grid axes {sorted(self.grid)}")
            for value in values:
                self._check_value(key, value, known, where=f"smoke_grid axis {key!r}")
        parts = {*known.values()}
        for trial in self.trial_configs():  # the rules that span keys, on every trial (the objective's and the harness's)
            for part in parts:
                part.check(trial)

    def _check_value(self, key: str, value: Any, known: Mapping[str, type[Config]], *, where: str) -> None:
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r} for objective {self.objective!r}{close_matches(key, known)}")
        known[key].check_value(key, value, where)


def _check_int(field_name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field_name} {value!r}: expected an integer >= {minimum}")


def _check_number(field_name: str, value: Any, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{field_name} {value!r}: expected a finite number >= {minimum}")


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is JSON (a bare word is taken as a string)."""
    sets: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set beta=0.01 or --set 'beta=[0.1, 1]'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            if raw.strip()[:1] in "[{\"" or not raw.strip():
                raise ValueError(f"--set {item!r}: {raw!r} is not valid JSON") from None
            value = raw.strip()
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
            raise ValueError(f"--set {item!r}: expected a JSON scalar or a list of scalars")
        sets[key] = value
    return sets
