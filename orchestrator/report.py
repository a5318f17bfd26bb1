"""Rebuild a sweep's reports from its parquet files alone.

    python -m orchestrator.report RESULTS_DIR [--out DIR]

Reads ``RESULTS_DIR/final.parquet``, ``epochs.parquet`` and, if present, ``evaluations.parquet``
(see ``docs/results.md``);
writes ``report.md``, ``report.html`` and the PNG figures into ``DIR`` (default
``RESULTS_DIR/reports``) and prints the path of ``report.md``. Bad input (a missing directory or
file, unreadable parquet, missing or corrupt sweep metadata, an unknown report name) prints one
line ``error: ...`` on stderr and exits with status 2; so does a ``--out`` that cannot be written.
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

# No display on a cluster head node or in CI; the reports only write PNG files.
matplotlib.use("Agg")

from orchestrator.reports import build_reports  # noqa: E402  (after choosing the backend)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.report", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="directory holding final.parquet and epochs.parquet")
    parser.add_argument("--out", metavar="DIR", default=None, help="where to write the reports (default: RESULTS_DIR/reports)")
    args = parser.parse_args(argv)
    try:
        path = build_reports(args.results_dir, args.out)
    except (OSError, ValueError) as exc:  # FileNotFoundError is an OSError
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
