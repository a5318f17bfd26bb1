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
  about what training does.
- ``trend``: ``metric`` is monotone ("increasing" or "decreasing") along the swept ``axis``. Holds when Spearman's
  rank correlation between the axis value and the metric over every selected trial (seeds pooled) has a one-sided
  p-value below 5% in that direction; rank-based, so a log-spaced beta grid and a rate that flattens near zero
  count as they should.
- ``bound``: every selected trial's ``metric`` is ``direction`` ("<=" or ">=") ``limit`` (plus ``tolerance`` of
  numerical slack). ``limit`` is a number or ``log(key)`` / ``log2(key)`` of a config key, read per trial.

A verdict is ``inconclusive`` when a compared group has fewer than 2 seeds (a bound: no finished trial) or a test
cannot be computed; ``orchestrator.claims`` says why in ``detail``. Values are in the metric's own units
(accuracies as fractions), so a paper's 98.87% is ``value=0.9887``.

Claims are grouped below by paper. A claim that needs the full-size data or a GPU is declared on the full-size
sweep; the sweep names are checked against :func:`search_spaces.get_sweep` when the claims are listed
(:func:`claims_for`, :func:`all_claims`), not at declaration, so this module imports no sweep. It imports neither
torch nor pandas: the driver lists claims as fast as it lists sweeps.
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
                  "ordering": ("value", "tolerance", "best", "axis", "limit"),
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
            return f"{self.metric} at {a} {self.direction} {b}{pinned}: {TESTS['ordering']}"
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
    from search_spaces import get_sweep

    for claim in CLAIMS.values():
        try:
            spec = get_sweep(claim.sweep)
        except ValueError as error:
            raise ValueError(f"claim {claim.id!r}: sweep: {error}") from None
        claim.check_against(spec)
    return list(CLAIMS.values())


# ================================================================================================================
# The claims, by paper. Numbers are the papers'; `where` pins the configuration the paper reports.
# ================================================================================================================

# ---- Alemi, Fischer, Dillon, Murphy 2017: the deep variational IB (vib) ------------------------------------------
ALEMI = "Alemi et al. 2017, Deep Variational Information Bottleneck"

ALEMI_CLAIMS = (
    Claim(id="vib_mnist.error_at_beta_1e-3", sweep="vib_mnist", paper=ALEMI, source="Table 1",
          claim="VIB with K = 256 at beta = 1e-3 reaches 1.13% test error on permutation-invariant MNIST "
                "(deterministic baseline 1.38%).",
          kind="value", metric="test/acc_mc", where={"beta": 1e-3, "latent_dim": 256},
          value=0.9887, tolerance=0.002, expected="98.87% accuracy (1.13% error), 12 posterior samples"),
    Claim(id="vib_mnist.ten_bits_at_beta_1e-2", sweep="vib_mnist", paper=ALEMI, source="Fig. 1(d)",
          claim="At beta = 1e-2 (K = 256) the encoder keeps only about 10 bits about the input.",
          kind="value", metric="test/rate_bits", where={"beta": 1e-2, "latent_dim": 256},
          value=10.0, tolerance=5.0, expected="about 10 bits of I(Z;X) (read off a figure: +-5 bits)"),
    Claim(id="vib_digits.rate_falls_k256", sweep="vib_digits", paper=ALEMI, source="Fig. 1(d)",
          claim="The rate I(Z;X) (its KL upper bound) falls as beta grows, K = 256.",
          kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", where={"latent_dim": 256},
          expected="decreasing in beta"),
    Claim(id="vib_digits.rate_falls_k2", sweep="vib_digits", paper=ALEMI, source="Fig. 1(d); K = 2 shows 'the same trends'",
          claim="The rate falls as beta grows with a K = 2 bottleneck too.",
          kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", where={"latent_dim": 2},
          expected="decreasing in beta"),
    Claim(id="vib_digits.regularizes", sweep="vib_digits", paper=ALEMI,
          source="Table 1 (VIB 1.13% vs baseline 1.38% error); Fig. 5 (beta = 1e-8 behaves as beta = 0)",
          claim="VIB at beta = 1e-3 generalizes better than the (nearly) unregularized model, K = 256.",
          kind="ordering", metric="test/acc_mc", where={"latent_dim": 256}, a={"beta": 1e-3}, b={"beta": 1e-9},
          direction="above", expected="above beta = 1e-9 (paper: 98.87% vs 98.62%)"),
    Claim(id="vib_digits.high_beta_forgets_k2", sweep="vib_digits", paper=ALEMI,
          source="Fig. 2 (K = 2): err_mc 3.18% at beta = 1e-3, 33.82% at beta = 1",
          claim="At beta = 1 a K = 2 bottleneck forgets so much that the classes overlap.",
          kind="ordering", metric="test/acc_mc", where={"latent_dim": 2}, a={"beta": 1.0}, b={"beta": 1e-3},
          direction="below", expected="below beta = 1e-3 (paper: 66.18% vs 96.82%)"),
    Claim(id="vib_digits.narrow_bottleneck_worse", sweep="vib_digits", paper=ALEMI, source="Fig. 1(b)",
          claim="A K = 2 bottleneck performs much worse than K = 256.",
          kind="ordering", metric="test/acc", where={"beta": 1e-3}, a={"latent_dim": 2}, b={"latent_dim": 256},
          direction="below", expected="K = 2 below K = 256"),
    Claim(id="vib_digits.fgs_robust", sweep="vib_digits", paper=ALEMI, source="Fig. 5(a)",
          claim="VIB resists FGS adversarial examples better than the unregularized model, more so as beta grows.",
          kind="ordering", metric="robust/fgsm_acc_eps0.1", where={"latent_dim": 256}, a={"beta": 1e-3},
          b={"beta": 1e-9}, direction="above", expected="FGS accuracy at beta = 1e-3 above beta = 1e-9 (eps 0.1)"),
)

# ---- Fischer 2020: the conditional entropy bottleneck (ceb) ----------------------------------------------------
# The papers are not in ../shared/papers; the claim is this project's (issue 19): beta prices the residual
# information I(X;Z|Y), so the rate the loss prices falls as beta grows.
FISCHER = "Fischer 2020, The Conditional Entropy Bottleneck"

FISCHER_CLAIMS = tuple(
    Claim(id=f"ceb_digits.rate_falls_k{k}", sweep="ceb_digits", paper=FISCHER,
          source="this project's claim (issue 19); the loss prices beta * I(X;Z|Y)",
          claim=f"The residual information falls as beta grows, K = {k}.",
          kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", where={"latent_dim": k},
          expected="decreasing in beta")
    for k in (256, 2)
)

# ---- Kirsch, Lyle, Gal 2020: IB with a k-NN entropy estimator (knn_ib) -------------------------------------------
KIRSCH = "Kirsch, Lyle and Gal 2020, Learning CIFAR-10 with a Simple Entropy Estimator Using IB Objectives"

KIRSCH_CLAIMS = (
    *(Claim(id=f"{sweep}.rate_falls", sweep=sweep, paper=KIRSCH, source="eq. (9)-(10); Fig. 2(a)",
            claim="H[Z] (= I[X;Z] with zero-entropy noise) falls as beta'' grows: its weight (1 - beta'') in the "
                  "loss shrinks.",
            kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing",
            expected="decreasing in beta''")
      for sweep in ("knn_ib_digits", "knn_ib_mnist", "knn_ib_cifar")),
    *(Claim(id=f"knn_ib_cifar.{decoder}_92", sweep="knn_ib_cifar", paper=KIRSCH, source="Section 5; Fig. 3",
            claim=f"A ResNet-18 trained with the objective reaches 92% CIFAR-10 test accuracy with the {label} decoder.",
            kind="value", metric=f"decoder/{decoder}_acc", best="max", value=0.92, tolerance=0.01,
            expected="92% (the paper's best beta'', not named)")
      for decoder, label in (("gmm", "Gaussian mixture"), ("resfc", "residual MLP"))),
)

# ---- Zhang: the deterministic IB with a learned entropy model (dib, simclr_dib) ------------------------------------
ZHANG = "Zhang et al., Entropy Constrained Compressive Representation Learning"
CIFAR_PGD20 = "robust/pgd20_acc_eps0.03137"  # PGD-20 at L-inf 8/255, the paper's attack

ZHANG_CLAIMS = (
    Claim(id="dib_digits.rate_falls", sweep="dib_digits", paper=ZHANG, source="eq. (4); Section IV.A",
          claim="The rate of the rounded representation falls as beta grows.",
          kind="trend", metric="test/rate_bits", axis="beta", direction="decreasing", expected="decreasing in beta"),
    Claim(id="dib_digits.sparser", sweep="dib_digits", paper=ZHANG, source="Section IV.D; Fig. 5 (left)",
          claim="Higher compression gives sparser representations: fewer non-zero entries as beta grows.",
          kind="trend", metric="test/active_dims", axis="beta", direction="decreasing",
          expected="decreasing in beta"),
    Claim(id="dib_digits.pgd20_beta0.5_above_ce", sweep="dib_digits", paper=ZHANG,
          source="Table II, non-regularized ResNet-18",
          claim="The entropy penalty makes the classifier more robust: PGD-20 accuracy at beta = 0.5 above plain "
                "cross-entropy.",
          kind="ordering", metric="robust/pgd20_acc_eps0.1", a={"beta": 0.5}, b={"beta": 0.0}, direction="above",
          expected="above CE (paper, CIFAR-10 at 8/255: 39.00% vs 1.15%)"),
    Claim(id="dib_cifar.clean_ce", sweep="dib_cifar", paper=ZHANG, source="Table II, regularized ResNet-18",
          claim="The regularized cross-entropy ResNet-18 reaches 85.99% clean test accuracy.",
          kind="value", metric="test/acc", where={"beta": 0.0}, value=0.8599, tolerance=0.02, expected="85.99%"),
    Claim(id="dib_cifar.pgd20_beta0.5", sweep="dib_cifar", paper=ZHANG, source="Table II, regularized ResNet-18",
          claim="Regularized models gain little robustness from compression: PGD-20 accuracy at beta = 0.5 is 0.05%.",
          kind="value", metric=CIFAR_PGD20, where={"beta": 0.5}, value=0.0005, tolerance=0.01, expected="0.05%"),
    Claim(id="dib_cifar_unregularized.clean_ce", sweep="dib_cifar_unregularized", paper=ZHANG,
          source="Table II, non-regularized ResNet-18",
          claim="The non-regularized cross-entropy ResNet-18 reaches 78.25% clean test accuracy.",
          kind="value", metric="test/acc", where={"beta": 0.0}, value=0.7825, tolerance=0.02, expected="78.25%"),
    Claim(id="dib_cifar_unregularized.pgd20_ce", sweep="dib_cifar_unregularized", paper=ZHANG,
          source="Table II, non-regularized ResNet-18",
          claim="PGD-20 at 8/255 leaves the non-regularized cross-entropy model 1.15% accuracy.",
          kind="value", metric=CIFAR_PGD20, where={"beta": 0.0}, value=0.0115, tolerance=0.01, expected="1.15%"),
    Claim(id="dib_cifar_unregularized.pgd20_beta0.5", sweep="dib_cifar_unregularized", paper=ZHANG,
          source="Table II, non-regularized ResNet-18",
          claim="With the entropy penalty at beta = 0.5 the non-regularized model keeps 39.00% accuracy under PGD-20.",
          kind="value", metric=CIFAR_PGD20, where={"beta": 0.5}, value=0.39, tolerance=0.05, expected="39.00%"),
    Claim(id="dib_cifar_unregularized.pgd20_beta0.5_above_ce", sweep="dib_cifar_unregularized", paper=ZHANG,
          source="Table II, non-regularized ResNet-18",
          claim="PGD-20 accuracy at beta = 0.5 is above plain cross-entropy's.",
          kind="ordering", metric=CIFAR_PGD20, a={"beta": 0.5}, b={"beta": 0.0}, direction="above",
          expected="above CE (paper: 39.00% vs 1.15%)"),
    Claim(id="simclr_dib_cifar.simclr_linear", sweep="simclr_dib_cifar", paper=ZHANG, source="Table I",
          claim="SimCLR (beta = 0, temperature 0.07) reaches 71.04% linear-evaluation test accuracy.",
          kind="value", metric="test/acc", where={"beta": 0.0, "temperature": 0.07}, value=0.7104, tolerance=0.02,
          expected="71.04%"),
    Claim(id="simclr_dib_cifar.compressive_linear", sweep="simclr_dib_cifar", paper=ZHANG, source="Table I",
          claim="The compressive SimCLR at beta = 0.1 (temperature 0.07) reaches 71.31% linear-evaluation accuracy.",
          kind="value", metric="test/acc", where={"beta": 0.1, "temperature": 0.07}, value=0.7131, tolerance=0.02,
          expected="71.31%"),
    *(Claim(id=f"{sweep}.compressive_above_simclr", sweep=sweep, paper=ZHANG, source="Section IV.B; Table I",
            claim="Compressive self-supervised representations generalize better than vanilla SimCLR.",
            kind="ordering", metric="test/acc", where={"temperature": temperature}, a={"beta": 0.1},
            b={"beta": 0.0}, direction="above", expected="beta = 0.1 above SimCLR (paper: 71.31% vs 71.04%)")
      for sweep, temperature in (("simclr_dib_cifar", 0.07), ("simclr_dib_digits", 0.1))),
)

# ---- Tschannen, Djolonga, Rubenstein, Gelly, Lucic 2020: MI maximization (infomax) -------------------------------
TSCHANNEN = "Tschannen et al. 2020, On Mutual Information Maximization for Representation Learning"


def _tschannen(sweep: str) -> tuple[Claim, ...]:
    """The paper's claims on one infomax sweep (the digits and MNIST sweeps share the grid)."""
    return (
        Claim(id=f"{sweep}.infonce_below_log_batch", sweep=sweep, paper=TSCHANNEN,
              source="the I_NCE slide: I_NCE = log K - E[log(1 + sum of exp(score differences))]",
              claim="The InfoNCE estimate never exceeds log of the number of pairs it is computed on.",
              kind="bound", metric="test/mi_nats", where={"estimator": "infonce"}, direction="<=",
              limit="log(mi_batch_size)", tolerance=1e-4, expected="<= log 128 = 4.85 nats"),
        Claim(id=f"{sweep}.probe_rises_invertible", sweep=sweep, paper=TSCHANNEN, source="Section 3.1 (Claim 1)",
              claim="With invertible encoders (fixed true MI) and a bilinear critic, downstream linear accuracy "
                    "still rises during training.",
              kind="ordering", metric="probe/test_acc", where={"encoder": "realnvp", "critic": "bilinear"},
              a={EPOCH_KEY: LAST_EPOCH}, b={EPOCH_KEY: 1}, direction="above",
              expected="last epoch above epoch 1 (both estimators pooled)"),
        Claim(id=f"{sweep}.mi_estimate_rises_invertible", sweep=sweep, paper=TSCHANNEN, source="Section 3.1 (Claim 1)",
              claim="With invertible encoders the MI estimate rises during training although the true MI cannot.",
              kind="ordering", metric="test/mi_nats", where={"encoder": "realnvp", "critic": "bilinear"},
              a={EPOCH_KEY: LAST_EPOCH}, b={EPOCH_KEY: 1}, direction="above",
              expected="last epoch above epoch 1 (both estimators pooled)"),
        Claim(id=f"{sweep}.condition_grows", sweep=sweep, paper=TSCHANNEN, source="Section 3.3 (Claim 1, third experiment)",
              claim="Maximizing the bounds drives a near-identity MLP encoder towards an ill-conditioned Jacobian.",
              kind="ordering", metric="conditioning/log_condition_number_p50",
              where={"encoder": "mlp", "critic": "bilinear"}, a={EPOCH_KEY: LAST_EPOCH}, b={EPOCH_KEY: 1},
              direction="above", expected="median log condition number: last epoch above epoch 1"),
        *(Claim(id=f"{sweep}.bilinear_above_concat_{estimator}", sweep=sweep, paper=TSCHANNEN,
                source="Section 3.2 (Claim 2)",
                claim=f"Higher-capacity critics can give worse representations: with {estimator}, the bilinear "
                      "critic's linear accuracy is above the concat critic's.",
                kind="ordering", metric="probe/test_acc", where={"estimator": estimator, "encoder": "realnvp"},
                a={"critic": "bilinear"}, b={"critic": "concat"}, direction="above",
                expected="bilinear above concat")
          for estimator in ("infonce", "nwj")),
    )


TSCHANNEN_CLAIMS = (*_tschannen("infomax_digits"), *_tschannen("infomax_mnist"))

# ---- Sinha, Song, Ermon: the hybrid autoencoder + contrastive bound (hybrid) --------------------------------------
SINHA = "Sinha, Song and Ermon, Hybrid Mutual Information Lower-bound Estimators for Representation Learning"

SINHA_CLAIMS = (
    Claim(id="hybrid_cifar.linear_accuracy", sweep="hybrid_cifar", paper=SINHA, source="Table 1 (CIFAR-10)",
          claim="The hybrid representation reaches 77.6% linear accuracy on CIFAR-10 (MoCo-v2 alone: 78.3%).",
          kind="value", metric="test/acc", best="max", value=0.776, tolerance=0.02,
          expected="77.6% (the paper's alpha and temperature are not stated: best of the grid)"),
    *(Claim(id=f"{sweep}.mse_falls_with_alpha", sweep=sweep, paper=SINHA, source="Section 1; Table 1",
            claim="The autoencoding bound keeps what the contrastive bound discards: more weight alpha on it lowers "
                  "the reconstruction error.",
            kind="trend", metric="test/mse", axis="alpha", direction="decreasing",
            expected="decreasing in alpha (temperatures pooled)")
      for sweep in ("hybrid_digits", "hybrid_cifar")),
    *(Claim(id=f"{sweep}.accuracy_falls_with_alpha", sweep=sweep, paper=SINHA, source="Section 1; Table 1",
            claim="Autoencoding representations classify worse than contrastive ones: linear accuracy falls as "
                  "alpha grows.",
            kind="trend", metric="test/acc", axis="alpha", direction="decreasing",
            expected="decreasing in alpha (temperatures pooled)")
      for sweep in ("hybrid_digits", "hybrid_cifar")),
)

for _claim in (*ALEMI_CLAIMS, *FISCHER_CLAIMS, *KIRSCH_CLAIMS, *ZHANG_CLAIMS, *TSCHANNEN_CLAIMS, *SINHA_CLAIMS):
    register_claim(_claim)
