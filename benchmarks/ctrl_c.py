"""Issue 17's "done when" for Ctrl-C, on the default ``vib_digits`` sweep (20 trials, two at once).

Starts ``python -m orchestrator.sweep vib_digits`` in a scratch directory, sends SIGINT to its
process group (what Ctrl-C in a terminal does) when the first ``[1/20]`` line appears, and checks
exit 130, the printed ``--resume`` command and no RUNNING MLflow run; then runs that printed
command and checks 20 unique trials in ``final.parquet`` and 20 FINISHED children in MLflow.
Prints the seconds from Ctrl-C to the exit and the resumed run's wall clock, with the load.
The test suite checks the same on smaller sweeps (tests/test_interrupt.py, tests/test_resume.py);
this runs the full default sweep, about 4 minutes on two cores. Needs the test extra (pytest).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m benchmarks ctrl_c", description=__doc__.splitlines()[0]).parse_args(argv)
    from benchmarks.common import load_average, machine
    from tests.conftest import Workspace
    from tests.helpers import mlflow_runs, read_tables
    from tests.test_interrupt import Cli, run_state

    print(f"machine: {machine()}; load {load_average()}")
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Workspace(Path(scratch))
        start = time.monotonic()
        cli = Cli(workspace.args("vib_digits"), workspace.root)
        cli.wait_for_line("[1/20]", timeout=1200)
        sent = cli.ctrl_c()
        code = cli.finish(300)
        print(f"[1/20] after {sent - start:.1f} s; Ctrl-C -> exit {code} in {time.monotonic() - sent:.1f} s")
        (run_dir,) = workspace.run_dirs("vib_digits")
        parents, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
        running = [run.info.run_name for run in parents + children if run.info.status == "RUNNING"]
        print(f"after Ctrl-C: sweep.json state {run_state(run_dir)!r}, RUNNING MLflow runs: {running}")
        if code != 130 or running or run_state(run_dir) != "interrupted":
            failures.append("the interrupted sweep")
        words = cli.resume_words()
        print("resume command: python -m orchestrator.sweep " + " ".join(words))
        resumed_at = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *words], cwd=workspace.root,
                              capture_output=True, text=True)
        print(f"resumed: exit {done.returncode} in {time.monotonic() - resumed_at:.1f} s")
        _, final = read_tables(run_dir)
        parents, children = mlflow_runs(workspace.tracking_uri, "vib_digits")
        ids = {child.data.tags["ib.trial_id"] for child in children}
        print(f"final.parquet: {len(final)} rows, {final['trial_id'].nunique()} unique, statuses {sorted(set(final['status']))}; "
              f"MLflow: {len(children)} children ({len(ids)} unique, {sorted({c.info.status for c in children})}), "
              f"parent {[p.info.status for p in parents]}")
        if (done.returncode != 0 or len(final) != 20 or final["trial_id"].nunique() != 20
                or set(final["status"]) != {"TERMINATED"} or len(children) != 20 or len(ids) != 20
                or {c.info.status for c in children} != {"FINISHED"} or [p.info.status for p in parents] != ["FINISHED"]):
            failures.append("the resumed sweep")
    print(f"load after: {load_average()}")
    if failures:
        print("FAILED: " + ", ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
