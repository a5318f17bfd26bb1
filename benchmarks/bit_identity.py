"""``python -m benchmarks bit_identity BEFORE AFTER``: are two results roots' sweeps bit-identical?

For a refactoring that must not change results (issue 18: every digits sweep bit-identical on the CPU). Run the same
sweeps from two checkouts into two storage roots, e.g.

    git worktree add /tmp/before <old commit>
    (cd /tmp/before && PYTHONPATH=$PWD python -m orchestrator.sweep vib_digits --epochs 4 --storage /tmp/b/storage)
    python -m orchestrator.sweep vib_digits --epochs 4 --storage /tmp/a/storage
    python -m benchmarks bit_identity /tmp/b/storage /tmp/a/storage

For each sweep present in both roots (its latest finished run), the three parquet tables are compared value for
value, rows matched by the trial's swept values and seed, with NaN equal to NaN. Columns that measure time or name
the run (trial ids, durations, dates) are left out. Exit 0 when every sweep is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

TABLES = ("final.parquet", "epochs.parquet", "evaluations.parquet")
# Columns that differ between any two runs of the same code: identifiers, clocks, durations, places.
VOLATILE = re.compile(r"trial_id|time|seconds|elapsed|date|timestamp|hostname|node_ip|pid|path|dir|iterations_since|"
                      r"run_id|checkpoint|steps_per_s|per_s$|throughput", re.IGNORECASE)


def latest_runs(root: Path) -> dict[str, Path]:
    """``sweep name -> its latest finished run directory`` under ``root``."""
    runs: dict[str, Path] = {}
    for record in sorted(root.glob("*/sweep.json")):
        info = json.loads(record.read_text())
        if info.get("state") == "finished" and (record.parent / "final.parquet").exists():
            runs[info["spec"]["name"]] = record.parent  # sorted by directory name, which ends in the start time
    return runs


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in frame.columns if not VOLATILE.search(c)]
    frame = frame[keep]
    keys = [c for c in keep if c.startswith("config/")] + [c for c in ("epoch", "evaluation", "metric", "norm",
                                                                        "epsilon", "steps", "index") if c in keep]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame


def differences(before: Path, after: Path) -> list[str]:
    """One line per table that differs between two run directories (empty: identical)."""
    found = []
    for table in TABLES:
        old_path, new_path = before / table, after / table
        if not old_path.exists() and not new_path.exists():
            continue
        if old_path.exists() != new_path.exists():
            found.append(f"{table}: present in only one run")
            continue
        old, new = _comparable(pd.read_parquet(old_path)), _comparable(pd.read_parquet(new_path))
        if list(old.columns) != list(new.columns):
            found.append(f"{table}: columns differ: {sorted(set(old.columns) ^ set(new.columns))}")
            continue
        if len(old) != len(new):
            found.append(f"{table}: {len(old)} rows before, {len(new)} after")
            continue
        for column in old.columns:
            a, b = old[column], new[column]
            same = (a == b) | (a.isna() & b.isna())
            if not same.all():
                row = int((~same).to_numpy().nonzero()[0][0])
                found.append(f"{table}: {column}: {int((~same).sum())} of {len(a)} values differ "
                             f"(first: {a.iloc[row]!r} before, {b.iloc[row]!r} after)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks bit_identity", description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results root of the old checkout")
    parser.add_argument("after", type=Path, help="results root of the new checkout")
    args = parser.parse_args(argv)
    old, new = latest_runs(args.before), latest_runs(args.after)
    common = sorted(set(old) & set(new))
    if not common:
        print(f"no sweep has a finished run in both {args.before} and {args.after}")
        return 1
    identical = True
    for name in common:
        found = differences(old[name], new[name])
        rows = len(pd.read_parquet(new[name] / "final.parquet"))
        print(f"{name}: {'identical' if not found else 'DIFFERENT'} ({rows} trials; {old[name].name} vs {new[name].name})")
        for line in found:
            print(f"  {line}")
        identical &= not found
    for name in sorted(set(old) ^ set(new)):
        print(f"{name}: only in {'before' if name in old else 'after'}")
    return 0 if identical else 1
