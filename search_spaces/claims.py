"""Paper claims as data: what each sweep's paper says that a run of the sweep can check.

A :class:`Claim` is one sentence of a paper made testable on one sweep's results: the metric it is about, the
trials it reads (``where`` pins config keys; an ordering compares the selections ``a`` and ``b``; a trend runs along
``axis``), what the paper reports (``expected``, and ``value`` where a number is checked) and its ``kind``, which
fixes the test that :mod:`orchestrator.claims` applies over the seeds:

- ``value``: the mean of ``metric`` is the paper's number within ``tolerance``. Holds when the 95% confidence
  interval of the mean over seeds (Student t, n - 1 degrees of freedom) overlaps ``[value - tolerance,
  value + tolerance]``; with ``best`` ("max" or "min") the configuration of the free swept axes with the best mean
  is the one tested (for a paper that reports its best setting without naming it).
- ``ordering``: ``metric`` at selection ``a`` is ``direction`` ("above" or "below") ``metric`` at ``b``. Holds when a
  one-sided Welch t-test over the seeds (``scipy.stats.ttest_ind(equal_var=False)``) rejects equality at 5%. A
  selection may hold ``epoch`` (1-based, or "last"): the metric at that epoch, from epochs.parquet, for claims
  about what training does. With ``tolerance`` = delta it is a non-inferiority claim ("a is no worse than b by more
  than delta", a paper's "comparable"): the same test of ``a + delta`` against ``b`` ("above"; ``a - delta``
  "below"), so it holds only when the seeds show a is within delta of b or beyond.
- ``trend``: ``metric`` is monotone ("increasing" or "decreasing") along the swept ``axis``. Holds when Spearman's
  rank correlation between the axis value and the metric over every selected trial (seeds pooled) has a one-sided
  p-value below 5% in that direction; rank-based, so a log-spaced beta grid and a rate that flattens near zero
  count as they should.
- ``bound``: every selected trial's ``metric`` is ``direction`` ("<=" or ">=") ``limit`` (plus ``tolerance`` of
  numerical slack). ``limit`` is a number or ``log(key)`` / ``log2(key)`` of a config key, read per trial.

A verdict is ``inconclusive`` when a compared group has fewer than 2 seeds (a bound: no finished trial) or a test
cannot be computed; ``orchestrator.claims`` says why in ``detail``. Values are in the metric's own units
(accuracies as fractions), so a paper's 98.87% is ``value=0.9887``.

Each family module of :mod:`search_spaces` declares its sweeps' claims beside them, after the sweeps
(``register_claims``), with its paper's title as ``paper`` so that listings group them. A claim that needs the
full-size data or a GPU is declared on the full-size sweep; the sweep names are checked against
:func:`search_spaces.get_sweep` when the claims are listed (:func:`claims_for`, :func:`all_claims`), not at
declaration. This module imports neither torch nor pandas: the driver lists claims as fast as it lists sweeps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Scalar = bool | int | float | str

KINDS = ("value", "ordering", "trend", "bound")
DIRECTIONS = {"ordering": ("above", "below"), "trend": ("increasing", "decreasing"), "bound": ("<=", ">=")}
BEST = ("max", "min")
EPOCH_KEY = "epoch"  # in an ordering's selection: the metric after that epoch (1-based int or "last")
LAST_EPOCH = "last"
_LIMIT = re.compile(r"^(log|log2)\((\w+)\)$")  # a bound's limit read from a config key, per trial
_ID = re.compile(r"^[A-Za-z0-9_.+-]+$")

# The test each kind applies, in one line (orchestrator.claims implements exactly this).
TESTS = {
    "value": "95% t-interval of the mean over seeds overlaps [expected - tol, expected + tol]",
    "ordering": "one-sided Welch t-test over seeds, p < 0.05",
    "trend": "one-sided Spearman rank correlation with the axis over all trials, p < 0.05",
    "bound": "every finished trial within the limit",
}


@dataclass(frozen=True)
class Claim:
    """One testable claim of a paper, declared on one sweep (the fields are described in the module docstring).

    ``paper`` groups claims in listings; ``source`` says where in the paper the claim is (table, figure, section).
    ``test`` is the one-line test; left empty it is derived from the kind and the fields. Fields a kind does not
    use must stay empty: validation names the field and the kind.
    """

    id: str
    sweep: str
    paper: str
    claim: str
    source: str
    kind: str
    metric: str
    expected: str
    where: Mapping[str, Scalar] = field(default_factory=dict)
    value: float | None = None  # value: the paper's number, in the metric's units
    tolerance: float | None = None  # value: the half-width of the accepted band; bound: numerical slack
    best: str = ""  # value: "max" / "min" to test the configuration with the best mean
    a: Mapping[str, Scalar] = field(default_factory=dict)  # ordering: the selection claimed above / below ...
    b: Mapping[str, Scalar] = field(default_factory=dict)  # ... this one
    axis: str = ""  # trend: the swept config key it runs along
    direction: str = ""  # ordering: above / below; trend: increasing / decreasing; bound: <= / >=
    limit: float | str | None = None  # bound: a number, or "log(key)" / "log2(key)" of a config key
    test: str = ""

    def __post_init__(self) -> None:
        self.validate()
        if not self.test:
            object.__setattr__(self, "test", self._derived_test())

    # ---- validation (the fields alone; the sweep is checked when listing) -----------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the claim and the field; never assert."""
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise ValueError(f"claim id {self.id!r}: expected letters, digits and _ . + -")
        for name in ("sweep", "paper", "claim", "source", "expected"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(self._where(name, "expected a non-empty string"))
        if self.kind not in KINDS:
            raise ValueError(self._where("kind", f"expected one of {', '.join(KINDS)}"))
        if not isinstance(self.metric, str) or "/" not in self.metric:
            raise ValueError(self._where("metric", "expected a column name like 'test/acc'"))
        for name in ("where", "a", "b"):
            self._check_selection(name, getattr(self, name), epoch_allowed=name != "where")
        unused = {"value": ("a", "b", "axis", "direction", "limit"),
                  "ordering": ("value", "best", "axis", "limit"),
                  "trend": ("value", "tolerance", "best", "a", "b", "limit"),
                  "bound": ("value", "best", "a", "b", "axis")}[self.kind]
        for name in unused:
            if getattr(self, name) not in (None, "", {}):
                raise ValueError(self._where(name, f"does not apply to a {self.kind} claim"))
        if self.kind != "value" and self.direction not in DIRECTIONS[self.kind]:
            raise ValueError(self._where("direction", f"expected one of {', '.join(DIRECTIONS[self.kind])} "
                                                      f"for a {self.kind} claim"))
        if self.tolerance is not None:
            _check_number(self, "tolerance", self.tolerance, minimum=0.0)
        if self.kind == "value":
            if self.value is None or self.tolerance is None:
                raise ValueError(self._where("value" if self.value is None else "tolerance",
                                             "a value claim needs both value and tolerance"))
            _check_number(self, "value", self.value)
            if self.best not in ("", *BEST):
                raise ValueError(self._where("best", f"expected '' or one of {', '.join(BEST)}"))
        elif self.kind == "ordering":
            if not self.a or not self.b:
                raise ValueError(self._where("a" if not self.a else "b", "an ordering compares two non-empty selections"))
            if dict(self.a) == dict(self.b):
                raise ValueError(self._where("b", "is the same selection as a"))
            for name in ("a", "b"):
                pinned = sorted(set(getattr(self, name)) & set(self.where))
                if pinned:
                    raise ValueError(self._where(name, f"{', '.join(pinned)} also pinned by where"))
        elif self.kind == "trend":
            if not isinstance(self.axis, str) or not self.axis:
                raise ValueError(self._where("axis", "a trend claim names the swept key it runs along"))
            if self.axis in self.where:
                raise ValueError(self._where("axis", f"{self.axis!r} is also pinned by where"))
        else:
            self.limit_parts()

    def limit_parts(self) -> tuple[str, str] | float:
        """A bound's limit: the number, or ``(function, config key)`` for ``log(key)`` / ``log2(key)``."""
        if isinstance(self.limit, str):
            match = _LIMIT.match(self.limit.strip())
            if match is None:
                raise ValueError(self._where("limit", "expected a number, 'log(key)' or 'log2(key)'"))
            return match.group(1), match.group(2)
        if isinstance(self.limit, bool) or not isinstance(self.limit, (int, float)) or not math.isfinite(self.limit):
            raise ValueError(self._where("limit", "expected a finite number, 'log(key)' or 'log2(key)'"))
        return float(self.limit)

    def check_against(self, spec: Any) -> None:
        """Check the claim against its sweep's :class:`~search_spaces.spec.SweepSpec`: every key it pins is a key of
        the sweep, a pinned swept axis takes one of its grid values, a fixed key its fixed value, and a trend's axis
        is a swept numeric axis."""
        known = {**spec.base_config(), **{key: None for key in spec.grid}}
        selections = {"where": self.where, "a": self.a, "b": self.b}
        for name, selection in selections.items():
            for key, value in selection.items():
                if key == EPOCH_KEY:
                    continue
                if key not in known:
                    raise ValueError(self._where(name, f"{key!r} is not a config key of sweep {spec.name!r}"))
                if key in spec.grid:
                    if not any(same_value(option, value) for option in spec.grid[key]):
                        raise ValueError(self._where(name, f"{key}={value!r} is not among the sweep's values "
                                                           f"{list(spec.grid[key])}"))
                elif not same_value(known[key], value):
                    raise ValueError(self._where(name, f"{key}={value!r}, but sweep {spec.name!r} fixes "
                                                       f"{key}={known[key]!r}"))
        if self.kind == "trend":
            values = spec.grid.get(self.axis)
            if values is None:
                raise ValueError(self._where("axis", f"{self.axis!r} is not a swept axis of {spec.name!r} "
                                                     f"(axes: {', '.join(spec.grid)})"))
            if len(values) < 2 or not all(_is_number(v) for v in values):
                raise ValueError(self._where("axis", f"{self.axis!r} needs at least two numeric values, "
                                                     f"got {list(values)}"))
        if self.kind == "bound" and isinstance(self.limit, str):
            key = self.limit_parts()[1]
            if key not in known:
                raise ValueError(self._where("limit", f"{key!r} is not a config key of sweep {spec.name!r}"))

    # ---- text ---------------------------------------------------------------------------------------------
    def selection_label(self, selection: Mapping[str, Scalar], *, with_where: bool = True) -> str:
        """``"beta=0.5, latent_dim=256"``: ``where`` and then ``selection`` (an epoch as ``"epoch 1"`` /
        ``"last epoch"``); ``"all trials"`` for none."""
        parts = []
        for key, value in {**(self.where if with_where else {}), **selection}.items():
            if key == EPOCH_KEY:
                parts.append("last epoch" if value == LAST_EPOCH else f"epoch {value}")
            else:
                parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        return ", ".join(parts) or "all trials"

    def _derived_test(self) -> str:
        if self.kind == "value":
            chosen = f"the configuration with the {self.best} mean" if self.best else self.selection_label({})
            return (f"{self.metric} at {chosen}: {TESTS['value']}, expected {self.value:g}, "
                    f"tol {self.tolerance:g}")
        pinned = f" ({self.selection_label({})})" if self.where else ""
        if self.kind == "ordering":
            a, b = (self.selection_label(s, with_where=False) for s in (self.a, self.b))
            margin = f" - {self.tolerance:g}" if self.tolerance and self.direction == "above" else (
                f" + {self.tolerance:g}" if self.tolerance else "")
            return f"{self.metric} at {a} {self.direction} {b}{margin}{pinned}: {TESTS['ordering']}"
        if self.kind == "trend":
            return f"{self.metric} {self.direction} in {self.axis}{pinned}: {TESTS['trend']}"
        slack = f" + {self.tolerance:g}" if self.tolerance else ""
        return f"{self.metric} {self.direction} {self.limit}{slack} in every finished trial{pinned}"

    def _where(self, name: str, problem: str) -> str:
        return f"claim {self.id!r}: {name}: {problem}"

    def _check_selection(self, name: str, selection: Any, *, epoch_allowed: bool) -> None:
        if not isinstance(selection, Mapping):
            raise ValueError(self._where(name, f"expected a mapping of config key to value, got {selection!r}"))
        for key, value in selection.items():
            if key == EPOCH_KEY:
                if not epoch_allowed:
                    raise ValueError(self._where(name, "'epoch' selects a group of an ordering (a or b), not where"))
                if value != LAST_EPOCH and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    raise ValueError(self._where(name, f"epoch {value!r}: expected a 1-based int or 'last'"))
            elif not isinstance(key, str) or not isinstance(value, (bool, int, float, str)):
                raise ValueError(self._where(name, f"{key!r}: {value!r}: expected a config key and a JSON scalar"))


def same_value(declared: Any, value: Any) -> bool:
    """Whether a config value equals a claim's: numbers within a relative 1e-9 (``10.0 ** -9`` is ``1e-9``)."""
    if _is_number(declared) and _is_number(value):
        return math.isclose(float(declared), float(value), rel_tol=1e-9, abs_tol=0.0)
    return type(declared) is type(value) and declared == value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(claim: Claim, name: str, value: Any, *, minimum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            minimum is not None and value < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise ValueError(claim._where(name, f"{value!r}: expected a finite number{bound}"))


# ---- registry -------------------------------------------------------------------------------------------------

CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    """Register ``claim`` under its id (validated on construction); a duplicate id is an error."""
    if claim.id in CLAIMS:
        raise ValueError(f"claim {claim.id!r} is registered twice")
    CLAIMS[claim.id] = claim
    return claim


def register_claims(*claims: Claim) -> None:
    """Register each of ``claims`` (a family module's sweeps' claims, declared beside them)."""
    for claim in claims:
        register_claim(claim)


def claims_for(sweep_name: str) -> list[Claim]:
    """The claims declared on ``sweep_name``, in declaration order, each checked against the sweep.

    ValueError if the sweep is not registered (with close matches) or a claim does not fit it.
    """
    from search_spaces import get_sweep  # lazily: search_spaces imports this module with the sweeps

    spec = get_sweep(sweep_name)
    claims = [claim for claim in CLAIMS.values() if claim.sweep == sweep_name]
    for claim in claims:
        claim.check_against(spec)
    return claims


def all_claims() -> list[Claim]:
    """Every registered claim, in declaration order, each checked against its sweep; ValueError names the claim
    whose sweep is unknown."""
    from search_spaces import get_sweep, sweep_names

    sweep_names()  # imports every family module, which registers its claims
    for claim in CLAIMS.values():
        try:
            spec = get_sweep(claim.sweep)
        except ValueError as error:
            raise ValueError(f"claim {claim.id!r}: sweep: {error}") from None
        claim.check_against(spec)
    return list(CLAIMS.values())
