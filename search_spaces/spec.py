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
ZOO = "zoo"  # SweepSpec.objective of a sweep whose trials are of several objectives (its members)


def declared_keys(objective: str) -> dict[str, type[Config]]:
    """``key -> the config part that declares it`` for a trial of ``objective``."""
    parts = (*HARNESS_PARTS, get_slice(objective).config)
    return {key: part for part in parts for key in part.declared()}


def harness_keys() -> dict[str, type[Config]]:
    """``key -> the harness part that declares it``: the keys every objective's trial understands."""
    return {key: part for part in HARNESS_PARTS for key in part.declared()}


def objective_defaults(objective: str) -> dict[str, Scalar]:
    return get_slice(objective).config.defaults()


@dataclass(frozen=True)
class Member:
    """One objective of a zoo sweep: its own config and its own swept axes.

    A zoo compares objectives on one footing: the sweep's ``config`` (harness keys: data, optimiser, attacks,
    information plane) is shared, and each member gives, in its own keys, the same backbone sizes and its own
    compression weight's grid (e.g. ``{"beta": (...)}``), chosen to span the rates the other members reach.
    ``config`` may also hold harness keys the member needs changed (its paper's learning rate, say).
    """

    objective: str
    config: Mapping[str, Scalar] = field(default_factory=dict)
    grid: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    smoke_grid: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "config": dict(self.config),
                "grid": {k: list(v) for k, v in self.grid.items()},
                "smoke_grid": {k: list(v) for k, v in self.smoke_grid.items()}}


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: an objective, a dataset, a fixed config and the axes swept over it.

    ``grid`` maps a config key to the values it takes (the trial grid is their product times
    ``seeds``). ``ranges`` gives Optuna's distribution for an axis, ``(kind, low, high)`` with
    kind in uniform / loguniform / int; an axis without one is categorical over its grid values.
    ``smoke`` holds the config overrides ``--smoke`` applies (``epochs`` among them) and
    ``smoke_grid`` the axes it shrinks, so every sweep has a variant that runs on two CPU cores.

    A *zoo* has ``objective="zoo"`` and ``members``, one :class:`Member` per objective: its trials are the union of
    each member's grid (times the shared ``grid``, if any, and the seeds), and ``objective`` becomes a per-trial key.
    ``config`` then holds only harness keys, shared by every member.
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
    members: tuple[Member, ...] = ()

    # ---- derived views -------------------------------------------------------------------
    @property
    def is_zoo(self) -> bool:
        return bool(self.members)

    def base_config(self) -> dict[str, Scalar]:
        """The config every trial shares, before the swept axes and the seed are set (a zoo's: harness keys only)."""
        own = {} if self.is_zoo else objective_defaults(self.objective)
        return {
            **HARNESS_DEFAULTS,
            **own,
            **self.config,
            "objective": self.objective,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "evaluations": ",".join(self.evaluations),
        }

    def _groups(self) -> list[tuple[dict[str, Scalar], dict[str, tuple[Scalar, ...]]]]:
        """``(fixed config, axes)`` per member (one group for a sweep of one objective)."""
        base = self.base_config()
        if not self.is_zoo:
            return [(base, dict(self.grid))]
        return [({**base, **objective_defaults(m.objective), **m.config, "objective": m.objective},
                 {**m.grid, **self.grid}) for m in self.members]

    def num_trials(self) -> int:
        return sum(math.prod(len(v) for v in axes.values()) for _, axes in self._groups()) * len(self.seeds)

    def trial_configs(self) -> list[dict[str, Scalar]]:
        """The expanded grid: one flat config per trial, member by member, seeds innermost."""
        configs = []
        for fixed, axes in self._groups():
            for values in itertools.product(*axes.values()):
                for seed in self.seeds:
                    configs.append({**fixed, **dict(zip(axes, values)), "seed": seed})
        return configs

    def axes(self) -> dict[str, tuple[Scalar, ...]]:
        """Every swept key with the values it takes: the grid, or a zoo's ``objective`` and the union of its members'
        axes (a member that does not sweep a key has it fixed, or lacks it)."""
        if not self.is_zoo:
            return dict(self.grid)
        axes: dict[str, tuple[Scalar, ...]] = {"objective": tuple(m.objective for m in self.members)}
        for member in self.members:
            for key, values in {**member.grid, **self.grid}.items():
                axes[key] = tuple(dict.fromkeys((*axes.get(key, ()), *values)))
        return axes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with results, compared on ``--resume``)."""
        d = dataclasses.asdict(self)
        d["config"] = dict(self.config)
        d["grid"] = {k: list(v) for k, v in self.grid.items()}
        d["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        d["smoke_grid"] = {k: list(v) for k, v in self.smoke_grid.items()}
        for key in ("seeds", "evaluations", "reports"):
            d[key] = list(d[key])
        d["members"] = [m.to_dict() for m in self.members]
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
        sets = dict(sets or {})
        if smoke:
            smoke_config = dict(self.smoke)
            epochs_, dataset = smoke_config.pop("epochs", spec.epochs), smoke_config.pop("dataset", spec.dataset)
            if spec.is_zoo:  # a member's own key among the smoke settings goes to the members, as --set does
                keep = sets.pop("objective", None)
                if keep is not None:  # first drop the members not kept, and the smoke settings only they read
                    spec = spec._with_zoo_sets({"objective": keep})
                smoke_config = {key: value for key, value in smoke_config.items()
                                if spec._declared_by_zoo(key)}
                sets = {**smoke_config, **sets}
                smoke_config = {}
            spec = dataclasses.replace(
                spec,
                epochs=epochs_,
                dataset=dataset,
                config={**spec.config, **smoke_config},
                grid={**spec.grid, **spec.smoke_grid},
                seeds=spec.seeds[:1],
                cpus_per_trial=1.0,  # smoke runs are CPU-sized; --gpus-per-trial puts them on a GPU
                gpus_per_trial=0.0,
                members=tuple(dataclasses.replace(m, grid={**m.grid, **m.smoke_grid}) for m in spec.members),
            )
        if spec.is_zoo:
            spec = spec._with_zoo_sets({k: v for k, v in sets.items() if k not in ("dataset", "evaluations")})
            sets = {k: v for k, v in sets.items() if k in ("dataset", "evaluations")}
        config, grid, ranges, smoke_grid = dict(spec.config), dict(spec.grid), dict(spec.ranges), dict(spec.smoke_grid)
        for key, value in sets.items():
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

    def _with_zoo_sets(self, sets: Mapping[str, Any]) -> SweepSpec:
        """``--set`` on a zoo: ``objective`` keeps the members named; a harness key is set (or swept, given a list)
        for every member; a member's own key for every member that declares it (an error if none does)."""
        members = list(self.members)
        config, grid = dict(self.config), dict(self.grid)
        for key, value in sets.items():
            if key == "objective":
                keep = value if isinstance(value, list) else [value]
                names = [m.objective for m in members]
                unknown = [v for v in keep if v not in names]
                if unknown or not keep:
                    raise ValueError(f"--set objective={value!r}: expected members of zoo {self.name!r}: "
                                     f"{', '.join(names)}")
                members = [m for m in members if m.objective in keep]
                smoke = {k: v for k, v in self.smoke.items() if k in ("epochs", "dataset")
                         or dataclasses.replace(self, members=tuple(members))._declared_by_zoo(k)}
                self = dataclasses.replace(self, smoke=smoke)
                continue
            if key in ("epochs", "seed"):
                raise ValueError(f"--set {key}=...: {key!r} cannot be set this way; use "
                                 + {"epochs": "--epochs N", "seed": "--seeds N"}[key])
            harness = key in HARNESS_DEFAULTS
            owners = [m for m in members if key in declared_keys(m.objective)]
            if not harness and not owners:
                raise ValueError(f"--set {key}=...: no member of zoo {self.name!r} declares {key!r} "
                                 f"(members: {', '.join(m.objective for m in members)})")
            for i, member in enumerate(members):
                if harness or member in owners:
                    own_config, own_grid = dict(member.config), dict(member.grid)
                    own_config.pop(key, None)
                    own_grid.pop(key, None)
                    if not harness:
                        (own_grid if isinstance(value, list) else own_config)[key] = (
                            tuple(value) if isinstance(value, list) else value)
                    members[i] = dataclasses.replace(member, config=own_config, grid=own_grid,
                                                     smoke_grid={k: v for k, v in member.smoke_grid.items() if k != key})
            if harness:
                config.pop(key, None)
                grid.pop(key, None)
                (grid if isinstance(value, list) else config)[key] = tuple(value) if isinstance(value, list) else value
        return dataclasses.replace(self, config=config, grid=grid, members=tuple(members))

    def _declared_by_zoo(self, key: str) -> bool:
        return key in HARNESS_DEFAULTS or any(key in declared_keys(m.objective) for m in self.members)

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field and the bad value; never assert."""
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name {self.name!r}: expected letters, digits and underscores")
        if self.is_zoo or self.objective == ZOO:
            self._validate_members()
        elif self.objective not in objective_names():
            raise ValueError(f"objective {self.objective!r}: expected one of {', '.join(objective_names())}, or "
                             f"{ZOO!r} with members")
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

        known = harness_keys() if self.is_zoo else declared_keys(self.objective)
        reserved = {"objective", "dataset", "epochs", "seed", "evaluations"}
        for key, value in self.config.items():
            if key in reserved:
                raise ValueError(f"config key {key!r}: set it as the spec's own field, not in config")
            self._check_value(key, value, known, where="config")
        if not self.grid and not self.is_zoo:
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
                owners = [m.objective for m in self.members if key in declared_keys(m.objective)]
                self._check_value(key, value, declared_keys(owners[0]) if owners else known, where="smoke",
                                  objective=owners[0] if owners else None)
        for key, values in self.smoke_grid.items():
            if key not in self.grid:
                raise ValueError(f"smoke_grid axis {key!r}: expected one of the grid axes {sorted(self.grid)}")
            for value in values:
                self._check_value(key, value, known, where=f"smoke_grid axis {key!r}")
        for trial in self.trial_configs():  # the rules that span keys, on every trial (the objective's and the harness's)
            for part in {*declared_keys(str(trial["objective"])).values()}:
                part.check(trial)

    def _validate_members(self) -> None:
        if self.objective != ZOO or not self.members:
            raise ValueError(f"objective {self.objective!r} with {len(self.members)} members: a zoo has "
                             f"objective={ZOO!r} and at least one member")
        names = [m.objective for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"members {names}: expected each objective once")
        for member in self.members:
            if member.objective not in objective_names():
                raise ValueError(f"member objective {member.objective!r}: expected one of "
                                 f"{', '.join(objective_names())}")
            known = declared_keys(member.objective)
            where = f"member {member.objective!r}"
            for key, value in member.config.items():
                if key in ("objective", "dataset", "epochs", "seed", "evaluations"):
                    raise ValueError(f"{where} config key {key!r}: set it as the spec's own field")
                self._check_value(key, value, known, where=f"{where} config", objective=member.objective)
            for key, values in {**member.grid, **member.smoke_grid}.items():
                if not values:
                    raise ValueError(f"{where} grid axis {key!r} is empty: expected at least one value")
                for value in values:
                    self._check_value(key, value, known, where=f"{where} grid axis {key!r}",
                                      objective=member.objective)
            for key in member.smoke_grid:
                if key not in member.grid:
                    raise ValueError(f"{where} smoke_grid axis {key!r}: expected one of its grid axes "
                                     f"{sorted(member.grid)}")

    def _check_value(self, key: str, value: Any, known: Mapping[str, type[Config]], *, where: str,
                     objective: str | None = None) -> None:
        if key not in known:
            whose = (f"objective {objective or self.objective!r}" if objective or not self.is_zoo
                     else "the members' shared config (harness keys; a member's own key goes in the member)")
            raise ValueError(f"{where}: unknown key {key!r} for {whose}{close_matches(key, known)}")
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
