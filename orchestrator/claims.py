"""Verdicts on the papers' claims: a sweep's results tested against the claims declared on it, and one table of all.

    python -m orchestrator.claims [RESULTS_ROOT]

prints, grouped by paper, every claim of every registered sweep (declared beside the sweeps in ``search_spaces/<family>.py``) with the verdict of
the latest finished run of its sweep under ``RESULTS_ROOT`` (default ``$IB_STORAGE``, else ``./ray_results``), or
``not run``, and the paper's number beside ours, as markdown. A bad declaration prints one line ``error: ...`` on
stderr and exits with status 2.

A verdict is ``holds``, ``fails`` or ``inconclusive``, decided over the seeds of the finished (TERMINATED) trials by
the test of the claim's kind (:data:`search_spaces.claims.TESTS`): a 95% t-interval for ``value``, a one-sided Welch
t-test at 5% for ``ordering``, a one-sided Spearman test at 5% for ``trend``, every trial within the limit for
``bound``. ``inconclusive`` means the run cannot decide: a compared group has fewer than two seeds (a bound: no
finished trial), a metric or config column is missing, the test cannot be computed (e.g. both groups constant), or
the run trained on another dataset than the sweep declares (a ``--smoke`` run). ``detail`` says which, and for the
others the statistic and the p-value.

What each kind puts in the numeric columns (the statistic its verdict rests on):

=========  ===============================================  ===========================================  ==============
kind       ``ours_mean``                                    ``ours_std``                                 ``n``
=========  ===============================================  ===========================================  ==============
value      mean of the metric                               its sample std (ddof = 1)                    trials
ordering   mean(a) - mean(b)                                Welch standard error of that difference      trials in a + b
trend      Spearman's rho                                   NaN                                          trials
bound      the value of the trial nearest to (or past)      NaN                                          trials
           the limit
=========  ===============================================  ===========================================  ==============

:func:`write_claims` writes them to ``claims.parquet`` in the run directory, with the sweep's metadata under the
schema key ``sweep`` as the other tables; :func:`claims_section` is the report's "Claims" section. Driver code: no
torch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from orchestrator.reports.data import FINAL_FILE, METADATA_KEY, SweepResults, config_column, format_mean_std, load_results
from orchestrator.reports.document import Section, Table, write_atomic
from orchestrator.run_record import latest_finished_run
from search_spaces.claims import EPOCH_KEY, LAST_EPOCH, TESTS, Claim, all_claims, claims_for, same_value

CLAIMS_FILE = "claims.parquet"
ALPHA = 0.05  # one-sided level of the ordering and trend tests
CONFIDENCE = 0.95  # of the value kind's interval
MIN_SEEDS = 2  # per compared group, else inconclusive
HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)
DEFAULT_ROOT = "./ray_results"  # orchestrator.sweep's default --storage (without importing Ray)

SCHEMA = pa.schema([
    ("id", pa.string()), ("sweep", pa.string()), ("paper", pa.string()), ("claim", pa.string()),
    ("source", pa.string()), ("kind", pa.string()), ("metric", pa.string()), ("expected", pa.string()),
    ("expected_value", pa.float64()), ("ours", pa.string()), ("ours_mean", pa.float64()), ("ours_std", pa.float64()),
    ("n", pa.int64()), ("p_value", pa.float64()), ("verdict", pa.string()), ("detail", pa.string()),
    ("test", pa.string()),
])
COLUMNS = tuple(SCHEMA.names)


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict on one run and the numbers behind it (see the module docstring for each kind's)."""

    verdict: str
    detail: str
    ours: str = "–"
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    p_value: float = math.nan


class _Undecidable(Exception):
    """The run cannot decide the claim; the message says why (a missing column, group or seed)."""


# ---- evaluation ---------------------------------------------------------------------------------------------------

def evaluate_claims(results: SweepResults, claims: Sequence[Claim] | None = None) -> pd.DataFrame:
    """The verdict of every claim on ``results``: one row per claim, columns :data:`COLUMNS`.

    ``claims`` defaults to those declared on the run's sweep (:func:`search_spaces.claims.claims_for`, which raises
    ValueError for a sweep that is not registered).
    """
    if claims is None:
        claims = claims_for(results.info.name)
    rows = [_row(claim, verdict_of(claim, results)) for claim in claims]
    return _frame(rows)


def verdict_of(claim: Claim, results: SweepResults) -> Verdict:
    """The verdict of one claim on one run's finished trials."""
    try:
        mismatch = _dataset_mismatch(claim, results)
        if mismatch:
            raise _Undecidable(mismatch)
        decide = {"value": _value, "ordering": _ordering, "trend": _trend, "bound": _bound}[claim.kind]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy on constant groups: the NaN is handled below
            return decide(claim, results)
    except _Undecidable as reason:
        return Verdict(INCONCLUSIVE, str(reason))


def _value(claim: Claim, results: SweepResults) -> Verdict:
    values = _values(results, claim, {})
    label = claim.selection_label({})
    note = ""
    if claim.best:
        values, label, note = _best_configuration(results, claim, values)
    sample = values["value"]
    mean, std, n = float(sample.mean()), float(sample.std()), len(sample)
    ours = format_mean_std(mean, std, n)
    seeds = values["seed"].nunique()
    if seeds < MIN_SEEDS:
        return Verdict(INCONCLUSIVE, f"{label}: {_seeds(seeds)}; a {CONFIDENCE:.0%} interval needs at least "
                                     f"{MIN_SEEDS}{note}", ours, mean, std, n)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    band_low, band_high = claim.value - claim.tolerance, claim.value + claim.tolerance
    holds = low <= band_high and high >= band_low
    detail = (f"{label}: {CONFIDENCE:.0%} interval of the mean [{low:.4g}, {high:.4g}] (t, {n - 1} dof) "
              f"{'overlaps' if holds else 'misses'} [{band_low:.4g}, {band_high:.4g}]{note}")
    return Verdict(HOLDS if holds else FAILS, detail, ours, mean, std, n)


def _ordering(claim: Claim, results: SweepResults) -> Verdict:
    groups = [_values(results, claim, selection) for selection in (claim.a, claim.b)]
    label_a, label_b = (claim.selection_label(selection, with_where=False) for selection in (claim.a, claim.b))
    a, b = (group["value"].to_numpy(dtype=float) for group in groups)
    text_a, text_b = (format_mean_std(x.mean(), x.std(ddof=1) if len(x) > 1 else math.nan, len(x)) for x in (a, b))
    ours, n, difference = f"{text_a} vs {text_b}", len(a) + len(b), float(a.mean() - b.mean())
    thin = [f"{label}: {_seeds(group['seed'].nunique())}" for label, group in zip((label_a, label_b), groups)
            if group["seed"].nunique() < MIN_SEEDS]
    if thin:
        return Verdict(INCONCLUSIVE, f"{'; '.join(thin)}; the Welch t-test needs at least {MIN_SEEDS} per group",
                       ours, difference, math.nan, n)
    above = claim.direction == "above"
    margin = claim.tolerance or 0.0  # non-inferiority: a within margin of b counts as not below (above) it
    test = stats.ttest_ind(a + margin if above else a - margin, b, equal_var=False,
                           alternative="greater" if above else "less")
    p, t = float(test.pvalue), float(test.statistic)
    error = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if not math.isfinite(p):
        return Verdict(INCONCLUSIVE, f"the Welch t-test cannot be computed ({label_a}: {text_a}; {label_b}: {text_b}; "
                                     "both groups constant?)", ours, difference, error, n)
    holds = p < ALPHA
    reversed_means = difference < 0 if above else difference > 0
    shifted = f" {'-' if above else '+'} {margin:g}" if margin else ""
    detail = (f"{label_a} {claim.direction} {label_b}{shifted}: one-sided Welch t = {t:.3g}, p = {p:.3g} "
              f"{'<' if holds else '>='} {ALPHA:g}" + ("; the means are in the opposite order" if reversed_means else ""))
    return Verdict(HOLDS if holds else FAILS, detail, ours, difference, error, n, p)


def _trend(claim: Claim, results: SweepResults) -> Verdict:
    values = _values(results, claim, {})
    column = config_column(claim.axis)
    if column not in values.columns:
        raise _Undecidable(f"final.parquet has no column {column}")
    values = values.assign(x=pd.to_numeric(values[column], errors="coerce")).dropna(subset=["x"])
    per_value = values.groupby("x", sort=True).agg(mean=("value", "mean"), seeds=("seed", "nunique"))
    if len(per_value) < 2:
        raise _Undecidable(f"{len(per_value)} value(s) of {claim.axis} with results; a trend needs at least 2")
    means = "; ".join(f"{claim.axis}={x:g}: {m:.4g}" for x, m in per_value["mean"].items())
    thin = [f"{claim.axis}={x:g}" for x, row in per_value.iterrows() if row["seeds"] < MIN_SEEDS]
    if thin:
        where = f"every {claim.axis}" if len(thin) == len(per_value) else ", ".join(thin)
        return Verdict(INCONCLUSIVE, f"fewer than {MIN_SEEDS} seeds at {where}; means: {means}", n=len(values))
    decreasing = claim.direction == "decreasing"
    test = stats.spearmanr(values["x"], values["value"], alternative="less" if decreasing else "greater")
    rho, p, n = float(test.statistic), float(test.pvalue), len(values)
    steps = np.diff(per_value["mean"].to_numpy())
    out_of_order = int(np.sum(steps > 0 if decreasing else steps < 0))
    ours = f"rho = {rho:.3f} ({n} trials)" if math.isfinite(rho) else f"– ({n} trials)"
    if not (math.isfinite(rho) and math.isfinite(p)):
        return Verdict(INCONCLUSIVE, f"Spearman's rho cannot be computed (the metric is constant?); means: {means}",
                       ours, rho, math.nan, n)
    holds = p < ALPHA
    detail = (f"Spearman rho = {rho:.3f} over {n} trials, one-sided p = {p:.3g} {'<' if holds else '>='} {ALPHA:g}; "
              f"means: {means}; {out_of_order} adjacent pair(s) of means against the trend")
    return Verdict(HOLDS if holds else FAILS, detail, ours, rho, math.nan, n, p)


def _bound(claim: Claim, results: SweepResults) -> Verdict:
    values = _values(results, claim, {})
    if values.empty:
        raise _Undecidable(f"no finished trial with a value of {claim.metric} ({claim.selection_label({})})")
    limit = claim.limit_parts()
    if isinstance(limit, float):
        limits = pd.Series(limit, index=values.index)
        limit_text = f"{limit:g}"
    else:
        function, key = limit
        column = config_column(key)
        if column not in values.columns:
            raise _Undecidable(f"final.parquet has no column {column} (the limit {claim.limit})")
        limits = pd.to_numeric(values[column], errors="coerce").astype(float)
        limits = np.log(limits) if function == "log" else np.log2(limits)
        if not np.isfinite(limits).all():
            raise _Undecidable(f"{claim.limit} is not a finite number in every selected trial")
        limit_text = claim.limit
    excess = values["value"] - limits if claim.direction == "<=" else limits - values["value"]
    slack = claim.tolerance or 0.0
    worst = excess.idxmax()
    beyond = int((excess > slack).sum())
    n = len(values)
    row = values.loc[worst]
    worst_text = (f"trial {row['trial_id']} (seed {row['seed']}): {row['value']:.5g} vs {limit_text} = "
                  f"{limits[worst]:.5g}")
    ours = f"{'max' if claim.direction == '<=' else 'min'} {row['value']:.4g} (limit {limits[worst]:.4g})"
    if beyond:
        detail = f"{beyond} of {n} trials beyond the limit (slack {slack:g}); worst: {worst_text}"
        return Verdict(FAILS, detail, ours, float(row["value"]), math.nan, n)
    return Verdict(HOLDS, f"all {n} trials within (slack {slack:g}); nearest: {worst_text}", ours,
                   float(row["value"]), math.nan, n)


# ---- selecting trials ---------------------------------------------------------------------------------------------

def _values(results: SweepResults, claim: Claim, selection: Mapping[str, object]) -> pd.DataFrame:
    """The finished trials that match ``claim.where`` and ``selection``, with their value of the claim's metric.

    Columns ``trial_id``, ``seed``, ``value`` and every ``config/`` column of final.parquet; one row per trial with
    a non-null value. With ``epoch`` in ``selection`` the value is the metric after that epoch (``"last"``: the
    trial's last reported epoch) from epochs.parquet, averaged over a repeated epoch (a resumed trial).
    """
    trials = results.finished
    pinned = {**claim.where, **selection}
    for key, value in pinned.items():
        if key == EPOCH_KEY:
            continue
        column = config_column(key)
        if column not in trials.columns:
            raise _Undecidable(f"final.parquet has no column {column}")
        trials = trials.loc[np.array([_matches(item, value) for item in trials[column]], dtype=bool)]
    label = claim.selection_label(selection)
    if trials.empty:
        raise _Undecidable(f"no finished trial at {label}")
    epoch = selection.get(EPOCH_KEY)
    if epoch is None:
        if claim.metric not in trials.columns:
            raise _Undecidable(f"final.parquet has no column {claim.metric}")
        values = trials[claim.metric]
    else:
        epochs = results.epochs
        if claim.metric not in epochs.columns:
            raise _Undecidable(f"epochs.parquet has no column {claim.metric}")
        rows = epochs[epochs["trial_id"].isin(set(trials["trial_id"]))]
        if epoch == LAST_EPOCH:
            rows = rows[rows["epoch"] == rows.groupby("trial_id")["epoch"].transform("max")]
        else:
            rows = rows[rows["epoch"] == epoch]
        per_trial = rows.groupby("trial_id")[claim.metric].mean()
        values = trials["trial_id"].map(per_trial)
    seed_column = config_column("seed")
    seeds = trials[seed_column] if seed_column in trials.columns else trials["trial_id"]
    frame = trials.assign(value=pd.to_numeric(values, errors="coerce").astype(float), seed=seeds)
    frame = frame.dropna(subset=["value"])
    if frame.empty:
        raise _Undecidable(f"no finished trial at {label} has a value of {claim.metric}")
    return frame


def _best_configuration(results: SweepResults, claim: Claim, values: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """The trials of the configuration of the free swept axes with the best mean, its label, and a note for detail."""
    free = [axis for axis in results.info.axes if axis not in claim.where and config_column(axis) in values.columns]
    if not free:
        return values, claim.selection_label({}), ""
    keys = [config_column(axis) for axis in free]
    means = values.groupby(keys, dropna=False)["value"].mean()
    best = means.idxmax() if claim.best == "max" else means.idxmin()
    best = best if isinstance(best, tuple) else (best,)
    chosen = values.loc[np.logical_and.reduce([np.array([_matches(v, b) for v in values[k]], dtype=bool)
                                               for k, b in zip(keys, best)])]
    label = ", ".join(f"{axis}={_text(value)}" for axis, value in zip(free, best))
    if claim.where:
        label = f"{claim.selection_label({})}, {label}"
    note = f"; chosen as the {claim.best} mean of {len(means)} configurations, so the interval is optimistic"
    return chosen, label, note


def _matches(item: object, value: object) -> bool:
    """Whether a config cell (a numpy or Python scalar, maybe null) equals a claim's value."""
    if item is None or (isinstance(item, float) and math.isnan(item)):
        return False
    return same_value(item.item() if isinstance(item, np.generic) else item, value)


def _dataset_mismatch(claim: Claim, results: SweepResults) -> str | None:
    """Why the run cannot test the claim: it trained on another dataset than the sweep declares; None if not."""
    from search_spaces import get_sweep

    ran = results.info.dataset
    try:
        declared = get_sweep(claim.sweep).dataset
    except ValueError:  # a sweep this checkout does not register: nothing to compare with
        return None
    if not ran or ran == declared:
        return None
    return f"this run trained on {ran}, the claim is about {claim.sweep} on {declared} (a --smoke run?)"


def _seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _row(claim: Claim, verdict: Verdict) -> dict[str, object]:
    return {"id": claim.id, "sweep": claim.sweep, "paper": claim.paper, "claim": claim.claim, "source": claim.source,
            "kind": claim.kind, "metric": claim.metric, "expected": claim.expected,
            "expected_value": math.nan if claim.value is None else float(claim.value), "ours": verdict.ours,
            "ours_mean": verdict.mean, "ours_std": verdict.std, "n": verdict.n, "p_value": verdict.p_value,
            "verdict": verdict.verdict, "detail": verdict.detail, "test": claim.test}


def _frame(rows: list[dict[str, object]], extra: Sequence[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *extra])
    for name in COLUMNS:
        kind = SCHEMA.field(name).type
        frame[name] = frame[name].astype("float64" if kind == pa.float64() else "int64" if kind == pa.int64() else "str")
    return frame


# ---- outputs ------------------------------------------------------------------------------------------------------

def write_claims(run_dir: str | Path) -> Path:
    """Evaluate the run's claims and write ``run_dir/claims.parquet`` atomically; return its path.

    The table has the columns :data:`SCHEMA` (docs/results.md) and final.parquet's sweep metadata under the schema
    key ``sweep``. A sweep without claims gets a table with no rows.
    """
    results = load_results(run_dir)
    frame = evaluate_claims(results)
    table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    metadata = (pq.read_schema(results.directory / FINAL_FILE).metadata or {}).get(METADATA_KEY)
    table = table.replace_schema_metadata({METADATA_KEY: metadata} if metadata is not None else None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    path = results.directory / CLAIMS_FILE
    write_atomic(path, sink.getvalue().to_pybytes())
    return path


def verdict_counts(frame: pd.DataFrame) -> dict[str, int]:
    """``{"holds": h, "fails": f, "inconclusive": i}`` (and ``"not run"`` when present) of a claims table."""
    counts = {verdict: int((frame["verdict"] == verdict).sum()) for verdict in VERDICTS}
    not_run = int((frame["verdict"] == NOT_RUN).sum())
    return {**counts, NOT_RUN: not_run} if not_run else counts


def claims_summary(frame: pd.DataFrame) -> str:
    """``"3 hold, 1 fails, 2 inconclusive"``: the counts in one line (e.g. the MLflow parent run's tag)."""
    counts = verdict_counts(frame)
    words = {HOLDS: "hold", FAILS: "fail", INCONCLUSIVE: "inconclusive", NOT_RUN: "not run"}
    return ", ".join(f"{count} {words[verdict]}" for verdict, count in counts.items())


def claims_section(results: SweepResults, frame: pd.DataFrame | None = None) -> Section:
    """The report's "Claims" section: each claim of the sweep with the paper's number, ours, and the verdict."""
    if frame is None:
        try:
            frame = evaluate_claims(results)
        except ValueError as error:  # a sweep this checkout does not register, or a claim that does not fit it
            return Section("Claims", [f"No verdicts: {error}."])
    if frame.empty:
        return Section("Claims", [f"No paper claim is declared for sweep `{results.info.name}` "
                                  "(claims are declared beside the sweeps, in `search_spaces/<family>.py`)."])
    kinds = list(dict.fromkeys(frame["kind"]))
    paragraphs = [
        f"{len(frame)} claims of the paper(s), tested on this run's finished trials: {claims_summary(frame)}.",
        "Tests: " + "; ".join(f"{kind}: {TESTS[kind]}" for kind in kinds) + f". A group with fewer than {MIN_SEEDS} "
        "seeds is inconclusive. Declared beside the sweep in `search_spaces/<family>.py`, decided by `orchestrator/claims.py`.",
    ]
    seeds = results.finished["config/seed"].nunique() if "config/seed" in results.finished else 0
    inconclusive = frame.loc[frame["verdict"] == INCONCLUSIVE, "detail"]
    if seeds < MIN_SEEDS and inconclusive.str.contains("seed").any():  # not a --smoke run on other data
        paragraphs.append(f"This run has {_seeds(seeds)}: `python -m orchestrator.sweep {results.info.name} --seeds 3` "
                          "(with the same options) repeats every configuration with three seeds, enough to decide "
                          "the claims left inconclusive for want of seeds.")
    rows = [[f"`{row.id}`: {row.claim}", row.source, row.expected, row.ours, str(row.n), f"**{row.verdict}**",
             row.detail] for row in frame.itertuples(index=False)]
    table = Table("Verdicts (`claims.parquet`)", ["claim", "source", "paper", "ours", "n", "verdict", "detail"], rows)
    return Section("Claims", paragraphs, tables=[table])


# ---- every sweep's claims under a results root --------------------------------------------------------------------

def claims_table(root: str | Path, claims: Sequence[Claim] | None = None) -> pd.DataFrame:
    """Every claim (default: every registered one) with the verdict of its sweep's latest finished run under
    ``root``, or ``not run``; columns :data:`COLUMNS` plus ``run`` (the run directory's name, "" if none)."""
    root = Path(root)
    claims = all_claims() if claims is None else list(claims)
    by_sweep: dict[str, list[Claim]] = {}
    for claim in claims:
        by_sweep.setdefault(claim.sweep, []).append(claim)
    rows = []
    for sweep, sweep_claims in by_sweep.items():
        run = latest_finished_run(root, sweep)
        if run is None:
            verdict = Verdict(NOT_RUN, f"no finished run of {sweep} under {root}")
            rows += [{**_row(claim, verdict), "run": ""} for claim in sweep_claims]
            continue
        try:
            frame = evaluate_claims(load_results(run), sweep_claims)
        except (OSError, ValueError) as error:
            verdict = Verdict(INCONCLUSIVE, f"could not read {run.name}: {' '.join(str(error).split())}")
            rows += [{**_row(claim, verdict), "run": run.name} for claim in sweep_claims]
            continue
        rows += [{**row, "run": run.name} for row in frame.to_dict("records")]
    order = {claim.id: index for index, claim in enumerate(claims)}
    table = _frame(rows, extra=("run",))
    return table.sort_values("id", key=lambda ids: ids.map(order), kind="stable").reset_index(drop=True)


def render_claims_table(table: pd.DataFrame, root: str | Path) -> str:
    """Markdown: a summary line, then one table per paper (in declaration order) with the paper's number beside ours."""
    sweeps = table["sweep"].nunique()
    lines = [f"# Paper claims: verdicts of the latest finished runs under {root}", "",
             f"{len(table)} claims on {sweeps} sweeps: {claims_summary(table)}. Tests: "
             + "; ".join(f"{kind}: {test}" for kind, test in TESTS.items())
             + f"; fewer than {MIN_SEEDS} seeds in a compared group is inconclusive.", ""]
    header = ["sweep", "claim", "source", "paper", "ours", "n", "verdict", "run", "detail"]
    for paper, rows in table.groupby("paper", sort=False):
        lines += [f"## {paper}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows.itertuples(index=False):
            n = str(row.n) if row.verdict != NOT_RUN else ""
            cells = [row.sweep, f"`{row.id}`: {row.claim}", row.source, row.expected, row.ours, n, row.verdict,
                     row.run, row.detail]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.claims", description=__doc__.splitlines()[0])
    parser.add_argument("results_root", metavar="RESULTS_ROOT", nargs="?",
                        default=os.environ.get("IB_STORAGE", DEFAULT_ROOT),
                        help="where the sweeps' run directories are (default: $IB_STORAGE, else ./ray_results)")
    args = parser.parse_args(argv)
    try:
        table = claims_table(args.results_root)
    except ValueError as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        return 2
    print(render_claims_table(table, args.results_root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
