"""SweepSpec: a sweep declared as data, and its validation.

A sweep is one objective on one dataset, a fixed config, and swept axes. Every trial receives a
flat config of JSON scalars (they become MLflow params as they are): the harness keys below, the
objective's own keys (declared with its sweeps by :func:`register_objective_defaults`), and the
value of each swept axis. This module imports neither torch nor Ray, so the driver can validate a
sweep without importing any model.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

Scalar = Union[bool, int, float, str]

# Keys every trial understands, read by trainables.harness. Defaults are the harness's, not a paper's.
HARNESS_DEFAULTS: dict[str, Scalar] = {
    "objective": "",  # set from SweepSpec.objective
    "dataset": "",  # set from SweepSpec.dataset
    "seed": 0,  # seeds Python, NumPy, torch and the batch-order generator
    "epochs": 1,  # set from SweepSpec.epochs
    "batch_size": 128,  # training examples per optimiser step
    "eval_batch_size": 1000,  # examples per forward pass in evaluation (no effect on results)
    "lr": 1e-3,  # Adam learning rate
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "weight_decay": 0.0,  # Adam's L2 weight decay
    "lr_decay": 1.0,  # multiply the learning rate by this ...
    "lr_decay_every": 1,  # ... every this many epochs (lr_decay = 1 keeps it constant)
    "lr_patience": 10,  # lr_schedule "plateau": lr x lr_decay after this many epochs without a lower train/loss
    "ema_decay": 0.0,  # evaluate an EMA of the weights, decay warmed up as min(decay, (1+t)/(10+t)) (0 = off)
    "checkpoint_every": 1,  # epochs between checkpoints (the last epoch is always checkpointed) ...
    "checkpoint_min_seconds": 10.0,  # ... and at least this long after the previous one (0: every checkpoint_every epochs)
    "train_subset": 0,  # keep this many training examples, class-stratified (0 = all)
    "test_subset": 0,  # keep this many test examples, class-stratified (0 = all)
    "batch_sampler": "random",  # "random" (a permutation) or "class_balanced" (every class in every batch)
    "lr_schedule": "step",  # "step" (lr_decay every lr_decay_every epochs), "cosine" (to 0 over all epochs) or "plateau"
    "augment": "none",  # "none" or "crop_flip": random crop after zero padding, and horizontal flip, on the device
    "crop_padding": 4,  # pixels of zero padding before the random crop
    "aux_lr": 1e-3,  # Adam learning rate of an objective's auxiliary parameters (entropy-model quantiles)
    # The training step's device path (trainables/fast_path.py); "auto" is the fast path on CUDA, fp32 on the CPU
    "precision": "auto",  # "auto" (bf16 autocast on CUDA), "bf16" or "fp32"
    "channels_last": "auto",  # "auto" (NHWC for image inputs on CUDA), "on" or "off"
    "compile": "off",  # "on": torch.compile the training forward; "cudagraphs": and replay it as CUDA graphs
    # After the last epoch, on the first eval_subset test examples (see docs/robustness.md):
    "evaluations": "",  # comma-separated: fgsm, pgd, apgd_ce, apgd_dlr, cw_l2 (set from SweepSpec.evaluations)
    "eval_subset": 1000,
    "fgsm_epsilons": "0.003922,0.007843,0.01569,0.03137",  # L-inf, pixels in [0, 1]: 1, 2, 4, 8 / 255
    "pgd_epsilons": "0.03137",  # L-inf radii of PGD and APGD (8/255; MNIST-sized data: 0.1,0.2,0.3)
    "pgd_step_fraction": 0.25,  # PGD step size as a fraction of its epsilon (Madry et al.: 2/255 at 8/255)
    "pgd_steps": "7,20",  # accuracy recorded at each of these iterates of one PGD run
    "apgd_steps": 100,  # APGD iterations per run (AutoAttack's standard version: 100)
    "apgd_targets": 9,  # APGD-DLR target classes, the highest non-true logits (AutoAttack: 9; capped at classes - 1)
    "apgd_norms": "linf",  # norms APGD runs at: "linf" (at pgd_epsilons) and/or "l2" (at l2_epsilons)
    # Carlini-Wagner L2 (docs/robustness.md): the paper runs 9 binary-search steps from c = 1e-3 at lr 0.01 for up
    # to 10,000 iterations; these converge on the digits (10x the iterations moves robust accuracy <= 2 points)
    "cw_steps": 300,  # the most Adam iterations per binary-search step (with early abort)
    "cw_binary_steps": 3,  # binary-search steps over the constant c
    "cw_initial_c": 1.0,  # the first c of every example's search (1e-3 and 1e-2 broke 0% and 3% of the digits)
    "cw_lr": 0.1,  # Adam's learning rate on tanh-space w (0.01 needs ~600 steps to move a pixel at 0 or 1)
    "l2_epsilons": "0.5,1.0,2.0",  # L2 radii at which CW (and APGD-L2) robust accuracy is reported
    "noise_samples": 10,  # masking check: uniform-noise draws per example at the largest L-inf epsilon
    "eot_samples": 1,  # gradients averaged over this many forward passes (stochastic encoders)
    # The information plane (docs/information_plane.md): I(X;Z) by k-NN entropy and an upper bound on H(Y|Z)
    "infoplane_every": 0,  # measure it after every this many epochs and after the last (0 = off)
    "infoplane_subset": 500,  # on the first this many test examples
    "infoplane_bias": "last",  # its k-NN bias (costlier than the rest): "last" epoch only, where the report reads it, or "every"
}

# Value rules shared by all objectives; an objective adds its own in register_objective_defaults.
POSITIVE = {"epochs", "batch_size", "eval_batch_size", "lr", "lr_decay_every", "checkpoint_every", "aux_lr",
            "eval_subset", "pgd_step_fraction", "apgd_steps", "cw_steps", "cw_binary_steps", "cw_initial_c", "cw_lr",
            "eot_samples", "lr_patience", "infoplane_subset"}
NONNEGATIVE = {"seed", "weight_decay", "train_subset", "test_subset", "crop_padding", "apgd_targets", "noise_samples",
               "infoplane_every", "checkpoint_min_seconds"}
CHOICES = {"lr_schedule": ("step", "cosine", "plateau"), "augment": ("none", "crop_flip"),
           "batch_sampler": ("random", "class_balanced"), "precision": ("auto", "fp32", "bf16"),
           "channels_last": ("auto", "on", "off"), "compile": ("off", "on", "cudagraphs"),
           "infoplane_bias": ("last", "every")}
# Comma-separated lists in string keys, and what each element must be.
LISTS = {"evaluations": ("fgsm", "pgd", "apgd_ce", "apgd_dlr", "cw_l2"), "fgsm_epsilons": float,
         "pgd_epsilons": float, "pgd_steps": int, "l2_epsilons": float, "apgd_norms": ("linf", "l2")}
UNIT_INTERVAL_OPEN = {"adam_beta1", "adam_beta2", "ema_decay"}  # in [0, 1)
UNIT_INTERVAL_CLOSED = {"lr_decay"}  # in (0, 1]

# Dataset names the trial side can load (trainables.data.DATASETS; a test keeps the two equal).
DATASETS = ("digits", "mnist", "cifar10", "synthetic")

OBJECTIVE_DEFAULTS: dict[str, dict[str, Scalar]] = {}
_OBJECTIVE_POSITIVE: dict[str, set[str]] = {}
_OBJECTIVE_NONNEGATIVE: dict[str, set[str]] = {}
_OBJECTIVE_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {}
_OBJECTIVE_AT_MOST_ONE: dict[str, set[str]] = {}  # value <= 1
_OBJECTIVE_BELOW_ONE: dict[str, set[str]] = {}  # value < 1

SEARCHES = ("grid", "optuna")
DISTRIBUTIONS = ("uniform", "loguniform", "int")


def register_objective_defaults(
    objective: str,
    defaults: Mapping[str, Scalar],
    *,
    positive: tuple[str, ...] = (),
    nonnegative: tuple[str, ...] = (),
    choices: Mapping[str, tuple[str, ...]] | None = None,
    at_most_one: tuple[str, ...] = (),
    below_one: tuple[str, ...] = (),
) -> None:
    """Declare the config keys of ``objective`` with their defaults and value rules."""
    clash = set(defaults) & set(HARNESS_DEFAULTS)
    if clash:
        raise ValueError(f"objective {objective!r} redefines harness keys {sorted(clash)}")
    OBJECTIVE_DEFAULTS[objective] = dict(defaults)
    _OBJECTIVE_POSITIVE[objective] = set(positive)
    _OBJECTIVE_NONNEGATIVE[objective] = set(nonnegative) | ({"beta"} & set(defaults))
    _OBJECTIVE_CHOICES[objective] = dict(choices or {})
    _OBJECTIVE_AT_MOST_ONE[objective] = set(at_most_one)
    _OBJECTIVE_BELOW_ONE[objective] = set(below_one)


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
            **OBJECTIVE_DEFAULTS.get(self.objective, {}),
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
        if self.objective not in OBJECTIVE_DEFAULTS:
            raise ValueError(
                f"objective {self.objective!r}: expected one of {', '.join(sorted(OBJECTIVE_DEFAULTS))}"
            )
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset {self.dataset!r}: expected one of {', '.join(DATASETS)}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode {self.mode!r}: expected 'min' or 'max'")
        for name in self.evaluations:
            if name not in LISTS["evaluations"]:
                raise ValueError(f"evaluations: {name!r}: expected any of {', '.join(LISTS['evaluations'])}")
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

        known = {**HARNESS_DEFAULTS, **OBJECTIVE_DEFAULTS[self.objective]}  # the schema, not this spec's values
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

    def _check_value(self, key: str, value: Any, known: Mapping[str, Scalar], *, where: str) -> None:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"{where}: unknown key {key!r} for objective {self.objective!r}{hint}")
        default = known[key]
        name = f"{key}={value!r}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where}: {name}: expected true or false")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: {name}: expected an integer")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: {name}: expected a number")
            if not math.isfinite(value):
                raise ValueError(f"{where}: {name}: expected a finite number")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ValueError(f"{where}: {name}: expected a string")
        positive = POSITIVE | _OBJECTIVE_POSITIVE.get(self.objective, set())
        nonnegative = NONNEGATIVE | _OBJECTIVE_NONNEGATIVE.get(self.objective, set())
        if key in positive and not value > 0:
            raise ValueError(f"{where}: {name}: expected a value > 0")
        if key in nonnegative and not value >= 0:
            raise ValueError(f"{where}: {name}: expected a value >= 0")
        if key in UNIT_INTERVAL_OPEN and not 0 <= value < 1:
            raise ValueError(f"{where}: {name}: expected a value in [0, 1)")
        if key in UNIT_INTERVAL_CLOSED and not 0 < value <= 1:
            raise ValueError(f"{where}: {name}: expected a value in (0, 1]")
        if key in _OBJECTIVE_AT_MOST_ONE.get(self.objective, set()) and not value <= 1:
            raise ValueError(f"{where}: {name}: expected a value <= 1")
        if key in _OBJECTIVE_BELOW_ONE.get(self.objective, set()) and not value < 1:
            raise ValueError(f"{where}: {name}: expected a value < 1")
        choices = {**CHOICES, **_OBJECTIVE_CHOICES.get(self.objective, {})}
        if key in choices and value not in choices[key]:
            raise ValueError(f"{where}: {name}: expected one of {', '.join(choices[key])}")
        if key in LISTS:
            _check_list(f"{where}: {name}", value, LISTS[key])


def _check_list(what: str, value: str, element: Any) -> None:
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        if isinstance(element, tuple):
            if item not in element:
                raise ValueError(f"{what}: {item!r} is not one of {', '.join(element)}")
            continue
        try:
            number = element(item)
        except ValueError:
            raise ValueError(f"{what}: {item!r} is not a {element.__name__}") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{what}: {item!r} must be a positive finite number")


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
