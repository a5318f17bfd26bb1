"""What a sweep leaves when Tune returns: parquet, reports, the parent run's artifacts, the closing lines.

A finished sweep prints its summary, the parquet paths and the MLflow link before building the
reports; an interrupted one writes what finished, marks its MLflow runs KILLED and prints the
``--resume`` command (exit code 130).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_spaces.spec import SweepSpec

from orchestrator.interrupt import EXIT_INTERRUPTED, CtrlC
from orchestrator.run_record import FINISHED, INTERRUPTED, SWEEP_FILE, record_state
from orchestrator.tuner import LaunchOptions

if TYPE_CHECKING:
    from orchestrator.sweep import Plan

EXIT_TRIALS_FAILED = 1


def run_metadata(spec: SweepSpec, options: LaunchOptions) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "paper": spec.paper, "objective": spec.objective,
            "dataset": spec.dataset, "axes": list(spec.axes()), "metric": spec.metric, "mode": spec.mode,
            "reports": list(spec.reports), "run_name": options.run_name, "epochs": spec.epochs}


def write_outputs(plan: Plan, result_grid, expected: int, experiment_id: str, ctrl_c: CtrlC) -> int:
    """Parquet, reports and the parent run's artifacts of a sweep, finished or interrupted; the exit code.

    The summary, the parquet paths and the MLflow command are printed before the reports are
    built; a Ctrl-C during the reports leaves them unfinished and the run resumable.
    """
    from orchestrator import results as results_io
    from orchestrator.claims import write_claims
    from orchestrator.tracking import find_parent_run, log_artifacts, log_claims

    spec, options = plan.spec, plan.options
    if result_grid is None:  # stopped before Tune ran
        return interrupted(plan, experiment_id, expected, None)
    epoch_rows, final_rows, evaluation_rows = results_io.trial_rows(result_grid, spec.axes(),
                                                                   results_io.known_trials(result_grid))
    written = results_io.write_results(options.run_dir, epoch_rows, final_rows, run_metadata(spec, options),
                                       evaluation_rows)
    written.append(write_claims(options.run_dir))  # the paper's claims, decided on the trials that finished
    statuses = [row["status"] for row in final_rows]
    finished, failed = statuses.count("TERMINATED"), statuses.count("ERROR")
    if ctrl_c.requested or "INCOMPLETE" in statuses or len(final_rows) < expected:
        return interrupted(plan, experiment_id, expected, (finished, failed, written), ctrl_c)

    say(f"\nsweep {spec.name}: {finished} trials finished, {failed} failed")
    say(f"results: {', '.join(str(p) for p in written)}")
    say(_mlflow_line(plan, experiment_id))
    report = _build_reports(options.run_dir, ctrl_c, presses=0)
    if report is None:
        return interrupted(plan, experiment_id, expected, None)
    parent = find_parent_run(plan.tracking_uri, experiment_id, options.run_name)
    if parent is not None:
        log_artifacts(plan.tracking_uri, parent, report.parent)
        log_claims(plan.tracking_uri, parent, options.run_dir)
    record_state(options.run_dir, FINISHED)
    say(f"report:  {report}  (and {report.with_suffix('.html')})")
    return EXIT_TRIALS_FAILED if failed else 0


def interrupted(plan: Plan, experiment_id: str, expected: int, outcome: tuple[int, int, list[Path]] | None,
                 ctrl_c: CtrlC | None = None) -> int:
    """End an interrupted sweep: sweep.json and MLflow say so, what finished is reported, and the
    ``--resume`` line is printed; exit code 130.

    ``outcome`` is (trials finished, trials failed, parquet files written), or None when no
    outputs were written (stopped before Tune ran, Ctrl-C twice, or during the reports).
    """
    from orchestrator.tracking import mark_interrupted

    spec, options = plan.spec, plan.options
    if (options.run_dir / SWEEP_FILE).is_file():
        record_state(options.run_dir, INTERRUPTED)
    try:
        mark_interrupted(plan.tracking_uri, experiment_id, options.run_name)
    except Exception as error:  # an unreachable store must not hide the resume line
        print(f"warning: could not mark the sweep's MLflow runs KILLED ({type(error).__name__}: {error})",
              file=sys.stderr)
    if outcome is not None:
        finished, failed, written = outcome
        say(f"\nsweep {spec.name} interrupted: {finished} of {expected} trials finished, {failed} failed, "
             f"the others are INCOMPLETE")
        say(f"results: {', '.join(str(p) for p in written)}")
        say(_mlflow_line(plan, experiment_id))
        if finished and ctrl_c is not None:
            report = _build_reports(options.run_dir, ctrl_c, presses=1)
            if report is not None:
                say(f"report:  {report}  (the finished trials only)")
    if not (options.run_dir / SWEEP_FILE).is_file():
        print("sweep stopped before it started; nothing was written. Run it again with:\n"
              f"  {plan.resume_command.removesuffix(' --resume')}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"sweep interrupted. Continue it with:\n  {plan.resume_command}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def _build_reports(run_dir: Path, ctrl_c: CtrlC, presses: int) -> Path | None:
    """Build the reports from the parquet files; None if Ctrl-C was pressed more than ``presses``
    times before they began, or cut them short."""
    from orchestrator.reports import build_reports

    ctrl_c.enter("reports")
    try:
        if ctrl_c.presses > presses:
            return None
        return build_reports(run_dir)
    except KeyboardInterrupt:
        return None
    finally:
        ctrl_c.enter("writing")


def _mlflow_line(plan: Plan, experiment_id: str) -> str:
    """How to open this sweep's trials in the MLflow UI: the runs table, in a saved view with the
    swept axes and the headline metrics as columns (tracking.save_runs_view)."""
    from orchestrator.tracking import find_parent_run, runs_url, save_runs_view

    spec = plan.spec
    try:
        parent = find_parent_run(plan.tracking_uri, experiment_id, plan.options.run_name)
        view = parent and save_runs_view(plan.tracking_uri, experiment_id, parent, list(spec.axes()),
                                         [spec.metric, "test/rate_bits"], spec.mode)
    except Exception:  # the store went away: the plain runs page still shows the trials
        view = None
    return f"mlflow:  mlflow ui --backend-store-uri {plan.tracking_uri}   then open {runs_url(experiment_id, view=view)}"


def say(line: str) -> None:
    """One of the sweep's own lines on stdout (above the live progress view, on a terminal)."""
    from orchestrator.console import say

    say(line)
