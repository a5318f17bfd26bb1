"""Trial configs declared once, as typed frozen dataclasses: the driver validates with them, a trial parses with them.

A trial receives a flat dict of JSON scalars (MLflow logs it as params). Its keys are declared in parts:
:class:`TrainingConfig`, :class:`DeviceConfig`, :class:`AttackConfig` and :class:`InfoPlaneConfig` here, and the
objective's own config in its slice (``trainables/objectives/<name>/config.py``). Each field is made with
:func:`param`: its default, the values it accepts (one list or interval, nowhere else) and a one-line description.
A rule that spans keys is a :class:`Rule` in the class's ``RULES``, so that the driver checks it on every trial of a
sweep before Ray starts and a test can walk every rule of every objective.

This module imports neither torch nor Ray: the driver imports it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

Scalar = Union[bool, int, float, str]

# Dataset names a trial can load (trainables.data.DATASETS; a test keeps the two equal), and their class counts,
# which rules such as knn_ib's examples-per-class need on the driver.
DATASET_CLASSES = {"digits": 10, "mnist": 10, "mnist5k": 10, "cifar10": 10, "synthetic": 10}
DATASETS = tuple(DATASET_CLASSES)

# Names shared by several objectives' configs; the modules that build them take their keys from here.
CONV_ENCODER_NAMES = ("resnet18", "small_conv")  # image encoders (trainables.models.build_encoder)
ENCODER_NAMES = (*CONV_ENCODER_NAMES, "mlp")  # ... and the MLP on flattened pixels: trainables.models.ENCODERS
RESNET_STEMS = ("cifar", "imagenet")  # trainables.models: 3x3 conv, no max-pool; or 7x7 conv + max-pool
ENTROPY_MODEL_NAMES = ("factorized", "hyperprior")  # trainables.entropy_models.ENTROPY_MODELS


def param(default: Scalar, doc: str, *, choices: tuple[str, ...] | None = None, low: float | None = None,
          high: float | None = None, low_open: bool = False, high_open: bool = False,
          items: tuple[str, ...] | type | None = None) -> Any:
    """A config field: ``default`` fixes its type (bool, int, float or str); the rest say what is accepted.

    ``choices``: the allowed strings. ``low`` / ``high``: an interval, an end excluded when ``low_open`` /
    ``high_open``. ``items``: the value is a comma-separated list whose elements are one of these strings, or
    positive finite numbers of this type (``float`` or ``int``).
    """
    return field(default=default, metadata={"doc": doc, "choices": choices, "low": low, "high": high,
                                            "low_open": low_open, "high_open": high_open, "items": items})


def positive(default: Scalar, doc: str) -> Any:
    """A number > 0."""
    return param(default, doc, low=0, low_open=True)


def nonnegative(default: Scalar, doc: str) -> Any:
    """A number >= 0."""
    return param(default, doc, low=0)


@dataclass(frozen=True)
class Rule:
    """A rule that spans config keys, checked on the driver for every trial and again when a trial parses its config.

    ``holds(trial)`` gets the flat trial config. ``accepted`` says what is accepted; the error names every key in
    ``keys`` with its value. ``violations`` are ``--set`` overrides that break the rule on a sweep of the objective
    (at least one), so that a test can check that each rule is enforced before Ray starts.
    """

    keys: tuple[str, ...]
    holds: Callable[[Mapping[str, Any]], bool]
    accepted: str
    violations: tuple[Mapping[str, Scalar], ...]

    def check(self, trial: Mapping[str, Any], owner: str) -> None:
        if not self.holds(trial):
            values = ", ".join(f"{key}={trial.get(key)!r}" for key in self.keys)
            raise ValueError(f"{owner}: {values}: {self.accepted}")


C = TypeVar("C", bound="Config")


class Config:
    """Base of every declared config part (each subclass is a frozen dataclass of :func:`param` fields)."""

    RULES: ClassVar[tuple[Rule, ...]] = ()
    OWNER: ClassVar[str] = "config"  # names the part in error messages: the objective's name, or "harness"

    @classmethod
    def declared(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict[str, Scalar]:
        return {name: f.default for name, f in cls.declared().items()}

    @classmethod
    def check_value(cls, key: str, value: Any, where: str) -> None:
        """Raise ValueError naming ``where``, the key and the value unless ``value`` is accepted for ``key``."""
        declared = cls.declared()[key]
        rule, default, name = declared.metadata, declared.default, f"{key}={value!r}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where}: {name}: expected true or false")
            return
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: {name}: expected an integer")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: {name}: expected a number")
            if not math.isfinite(value):
                raise ValueError(f"{where}: {name}: expected a finite number")
        elif not isinstance(value, str):
            raise ValueError(f"{where}: {name}: expected a string")
        low, high = rule["low"], rule["high"]
        if low is not None or high is not None:
            above = low is None or (value > low if rule["low_open"] else value >= low)
            below = high is None or (value < high if rule["high_open"] else value <= high)
            if not (above and below):
                raise ValueError(f"{where}: {name}: expected {_interval(rule)}")
        if rule["choices"] is not None and value not in rule["choices"]:
            raise ValueError(f"{where}: {name}: expected one of {', '.join(rule['choices'])}")
        if rule["items"] is not None:
            _check_items(f"{where}: {name}", value, rule["items"])

    @classmethod
    def check(cls, trial: Mapping[str, Any]) -> None:
        """Every rule of ``RULES`` on the flat trial config; ValueError naming the keys of the first broken one."""
        for rule in cls.RULES:
            rule.check(trial, cls.OWNER)

    @classmethod
    def from_mapping(cls: type[C], trial: Mapping[str, Any]) -> C:
        """This part of the flat trial config, each value checked (a missing key takes its default)."""
        values = {}
        for name, declared in cls.declared().items():
            value = trial.get(name, declared.default)
            cls.check_value(name, value, cls.OWNER)
            values[name] = float(value) if isinstance(declared.default, float) else value
        return cls(**values)


def _interval(rule: Mapping[str, Any]) -> str:
    low, high = rule["low"], rule["high"]
    if high is None:
        return f"a value {'>' if rule['low_open'] else '>='} {low:g}"
    if low is None:
        return f"a value {'<' if rule['high_open'] else '<='} {high:g}"
    return f"a value in {'(' if rule['low_open'] else '['}{low:g}, {high:g}{')' if rule['high_open'] else ']'}"


def _check_items(what: str, value: str, element: tuple[str, ...] | type) -> None:
    for item in (item.strip() for item in value.split(",")):
        if not item:
            continue
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


def split_list(value: str, element: type = str) -> list[Any]:
    """The elements of a comma-separated list field, converted to ``element``."""
    return [element(item.strip()) for item in value.split(",") if item.strip()]


# ---- the harness's parts: keys every trial understands (defaults are the harness's, not a paper's) ----

@dataclass(frozen=True)
class TrainingConfig(Config):
    """The training loop: data, optimiser, schedule, EMA, checkpoints (read by trainables.harness)."""

    OWNER: ClassVar[str] = "harness"

    dataset: str = param("digits", "set from SweepSpec.dataset", choices=DATASETS)
    seed: int = nonnegative(0, "seeds Python, NumPy, torch and the batch-order generator")
    epochs: int = positive(1, "set from SweepSpec.epochs")
    batch_size: int = positive(128, "training examples per optimiser step")
    eval_batch_size: int = positive(1000, "examples per forward pass in evaluation (no effect on results)")
    lr: float = positive(1e-3, "Adam learning rate")
    adam_beta1: float = param(0.9, "Adam's beta1", low=0, high=1, high_open=True)
    adam_beta2: float = param(0.999, "Adam's beta2", low=0, high=1, high_open=True)
    weight_decay: float = nonnegative(0.0, "Adam's L2 weight decay")
    lr_decay: float = param(1.0, "multiply the learning rate by this ...", low=0, high=1, low_open=True)
    lr_decay_every: int = positive(1, "... every this many epochs (lr_decay = 1 keeps it constant)")
    lr_patience: int = positive(10, 'lr_schedule "plateau": lr x lr_decay after this many epochs without a lower '
                                    'train/loss')
    ema_decay: float = param(0.0, "evaluate an EMA of the weights, decay warmed up as min(decay, (1+t)/(10+t)) "
                                  "(0 = off)", low=0, high=1, high_open=True)
    checkpoint_every: int = positive(1, "epochs between checkpoints (the last epoch is always checkpointed) ...")
    checkpoint_min_seconds: float = nonnegative(10.0, "... and at least this long after the previous one "
                                                      "(0: every checkpoint_every epochs)")
    train_subset: int = nonnegative(0, "keep this many training examples, class-stratified (0 = all)")
    test_subset: int = nonnegative(0, "keep this many test examples, class-stratified (0 = all)")
    batch_sampler: str = param("random", '"random" (a permutation) or "class_balanced" (every class in every batch)',
                               choices=("random", "class_balanced"))
    lr_schedule: str = param("step", '"step" (lr_decay every lr_decay_every epochs), "cosine" (to 0 over all '
                                     'epochs) or "plateau"', choices=("step", "cosine", "plateau"))
    augment: str = param("none", '"none" or "crop_flip": random crop after zero padding, and horizontal flip, on '
                                 'the device', choices=("none", "crop_flip"))
    crop_padding: int = nonnegative(4, "pixels of zero padding before the random crop")
    aux_lr: float = positive(1e-3, "Adam learning rate of an objective's auxiliary parameters (entropy-model "
                                   "quantiles)")


@dataclass(frozen=True)
class DeviceConfig(Config):
    """The training step's device path (trainables/fast_path.py); "auto" is the fast path on CUDA, fp32 on the CPU."""

    OWNER: ClassVar[str] = "harness"

    precision: str = param("auto", '"auto" (bf16 autocast on CUDA), "bf16" or "fp32"',
                           choices=("auto", "fp32", "bf16"))
    channels_last: str = param("auto", '"auto" (NHWC for image inputs on CUDA), "on" or "off"',
                               choices=("auto", "on", "off"))
    compile: str = param("off", '"on": torch.compile the training forward; "cudagraphs": and replay it as CUDA '
                                'graphs', choices=("off", "on", "cudagraphs"))


EVALUATIONS = ("fgsm", "pgd", "apgd_ce", "apgd_dlr", "cw_l2")


def lists_read(trial: Mapping[str, Any]) -> dict[str, type]:
    """``list key -> element type`` of the comma-separated lists that the named attacks read."""
    names = split_list(trial["evaluations"])
    apgd = "apgd_ce" in names or "apgd_dlr" in names
    norms = split_list(trial["apgd_norms"]) if apgd else []
    read = {"fgsm_epsilons": ("fgsm" in names, float), "pgd_epsilons": ("pgd" in names or apgd, float),
            "pgd_steps": ("pgd" in names, int), "apgd_norms": (apgd, str),
            "l2_epsilons": ("cw_l2" in names or "l2" in norms, float)}
    return {key: element for key, (needed, element) in read.items() if needed}


def _list_rule(key: str, attack: str, bad: str) -> Rule:
    """A list that a named attack reads is non-empty and repeats no value (two equal strengths would report under
    one metric name)."""

    def holds(trial: Mapping[str, Any]) -> bool:
        element = lists_read(trial).get(key)
        items = split_list(trial[key], element) if element else [None]
        return bool(items) and len(set(items)) == len(items)

    return Rule(("evaluations", key), holds, "expected a non-empty list of distinct values for the attacks named",
                ({"evaluations": attack, key: bad},))


@dataclass(frozen=True)
class AttackConfig(Config):
    """The attacks after the last epoch, on ``eval_subset`` stratified test examples (docs/robustness.md)."""

    OWNER: ClassVar[str] = "harness"

    evaluations: str = param("", "comma-separated attacks (set from SweepSpec.evaluations)", items=EVALUATIONS)
    eval_subset: int = positive(1000, "test examples attacked: a class-stratified choice, the same for every trial "
                                      "(trainables.data.evaluation_subset); all of them when >= the test split")
    fgsm_epsilons: str = param("0.003922,0.007843,0.01569,0.03137", "L-inf, pixels in [0, 1]: 1, 2, 4, 8 / 255",
                               items=float)
    pgd_epsilons: str = param("0.03137", "L-inf radii of PGD and APGD (8/255; MNIST-sized data: 0.1,0.2,0.3)",
                              items=float)
    pgd_step_fraction: float = positive(0.25, "PGD step size as a fraction of its epsilon (Madry et al.: 2/255 at "
                                              "8/255)")
    pgd_steps: str = param("7,20", "accuracy recorded at each of these iterates of one PGD run", items=int)
    apgd_steps: int = positive(100, "APGD iterations per run (AutoAttack's standard version: 100)")
    apgd_targets: int = positive(9, "APGD-DLR target classes, the highest non-true logits (AutoAttack: 9; capped "
                                       "at classes - 1)")
    apgd_norms: str = param("linf", 'norms APGD runs at: "linf" (at pgd_epsilons) and/or "l2" (at l2_epsilons)',
                            items=("linf", "l2"))
    cw_steps: int = positive(130, "Adam iterations per binary-search step of CW-L2 (the most, with cw_abort_early)")
    cw_binary_steps: int = positive(3, "binary-search steps over the constant c (the paper: 9)")
    cw_initial_c: float = positive(1.0, "the first c of every example's search (the paper: 1e-3)")
    cw_lr: float = positive(0.2, "Adam's learning rate on tanh-space w (the paper: 0.01)")
    cw_abort_early: bool = param(False, "the paper's early abort of an example whose loss stalls; off: it stops "
                                        "descents that still progress on straight-through-rounded models (DIB)")
    l2_epsilons: str = param("0.5,1.0,2.0", "L2 radii at which CW (and APGD-L2) robust accuracy is reported",
                             items=float)
    noise_samples: int = nonnegative(10, "masking check: uniform-noise draws per example at the largest L-inf "
                                         "epsilon")
    eot_samples: int = positive(1, "gradients averaged over this many forward passes (stochastic encoders)")

    RULES: ClassVar[tuple[Rule, ...]] = (
        _list_rule("fgsm_epsilons", "fgsm", "0.1,0.1"), _list_rule("pgd_epsilons", "pgd", ""),
        _list_rule("pgd_steps", "pgd", "7,7"), _list_rule("apgd_norms", "apgd_ce", "linf,linf"),
        _list_rule("l2_epsilons", "cw_l2", ""),
    )


@dataclass(frozen=True)
class InfoPlaneConfig(Config):
    """The information plane (docs/information_plane.md): I(X;Z) by k-NN entropy and an upper bound on H(Y|Z)."""

    OWNER: ClassVar[str] = "harness"

    infoplane_every: int = nonnegative(0, "measure it after every this many epochs and after the last (0 = off)")
    infoplane_subset: int = positive(500, "on this many test examples: a class-stratified choice, the same for "
                                          "every trial (trainables.data.evaluation_subset); all when >= the test "
                                          "split")
    infoplane_bias: str = param("last", 'its k-NN bias (costlier than the rest): "last" epoch only, where the report '
                                        'reads it, or "every"', choices=("last", "every"))


HARNESS_PARTS: tuple[type[Config], ...] = (TrainingConfig, DeviceConfig, AttackConfig, InfoPlaneConfig)


def harness_defaults() -> dict[str, Scalar]:
    """Every harness key with its default, plus ``objective`` (set from SweepSpec.objective)."""
    defaults: dict[str, Scalar] = {"objective": ""}
    for part in HARNESS_PARTS:
        defaults.update(part.defaults())
    return defaults


@dataclass(frozen=True)
class TrialConfig:
    """A trial's flat config parsed once into its typed parts; ``flat`` is the dict as the trial received it."""

    objective: str
    training: TrainingConfig
    device: DeviceConfig
    attacks: AttackConfig
    infoplane: InfoPlaneConfig
    own: Config  # the objective's config, from its slice
    flat: Mapping[str, Any]


def parse_trial(trial: Mapping[str, Any]) -> TrialConfig:
    """Parse and check a flat trial config (missing keys take their defaults); ValueError names the key and value."""
    from trainables.objectives import get_slice  # the registry imports this module

    objective = get_slice(trial.get("objective", ""))
    parsed = TrialConfig(objective=objective.name, training=TrainingConfig.from_mapping(trial),
                         device=DeviceConfig.from_mapping(trial), attacks=AttackConfig.from_mapping(trial),
                         infoplane=InfoPlaneConfig.from_mapping(trial), own=objective.config.from_mapping(trial),
                         flat=dict(trial))
    for part in (*HARNESS_PARTS, objective.config):
        part.check({**harness_defaults(), **objective.config.defaults(), **trial})
    return parsed


def close_matches(key: str, known: Mapping[str, Any] | list[str]) -> str:
    """`` (did you mean a, b?)`` for the keys of ``known`` close to ``key``, else an empty string."""
    close = difflib.get_close_matches(key, list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
