"""``python -m orchestrator.sweep NAME [options]``: spec -> Tuner -> results -> reports.

Everything a user can get wrong (sweep name, ``--set``, values, tracking URI, resume target) is
checked before Ray starts; each mistake is one line on stderr and exit code 2. Then the sweep
runs under Ray Tune, every trial is logged to MLflow from this process, and the results are
written as parquet and turned into reports, which are also attached to the sweep's MLflow run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from search_spaces import get_sweep
from search_spaces.spec import SweepSpec, parse_sets  # noqa: F401 - parse_sets: this CLI's API too

from orchestrator.dry_run import concurrency_summary, print_dry_run, print_list
from orchestrator.tuner import LaunchOptions

SWEEP_FILE = "sweep.json"
EXIT_USAGE = 2
EXIT_TRIALS_FAILED = 1
EXIT_INTERRUPTED = 130
PACKAGES = ("torch", "torchvision", "ray", "mlflow", "compressai", "optuna", "pyarrow", "scikit-learn", "numpy")


@dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    options: LaunchOptions
    tracking_uri: str
    resume: bool
    address: str | None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestrator.sweep", description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help="the sweep to run (--list shows them)")
    p.add_argument("--list", action="store_true", help="list every sweep with its paper, then exit")
    p.add_argument("--dry-run", action="store_true", help="show the expanded trials, resources and destinations; run nothing")
    p.add_argument("--smoke", action="store_true", help="apply the sweep's small-data, few-epoch overrides")
    p.add_argument("--epochs", type=int, help="epochs per trial")
    p.add_argument("--seeds", type=int, help="repeat every configuration with seeds 0..N-1")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; VALUE is JSON, a list makes it a grid axis (repeatable)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs reserved per trial")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions pack trials onto one GPU")
    p.add_argument("--trials-per-gpu", type=int, metavar="N",
                   help="pack N trials onto each GPU (a GPU resource of 1/N per trial); "
                        "--dry-run shows each trial's estimated memory")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    p.add_argument("--address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--storage", default=os.environ.get("IB_STORAGE", "./ray_results"),
                   help="where Tune results, parquet and reports go; on a cluster, a path every node "
                        "mounts (default: $IB_STORAGE, else ./ray_results)")
    p.add_argument("--data-dir", default=os.environ.get("IB_DATA_DIR", "./data"),
                   help="where datasets are read or downloaded (default: $IB_DATA_DIR, else ./data)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--resume", action="store_true", help="continue the latest unfinished run of this sweep")
    p.add_argument("--search", choices=("grid", "optuna"), default="grid", help="grid (default) or Optuna TPE")
    p.add_argument("--trials", type=int, default=0, help="number of Optuna trials (with --search optuna)")
    return p


# ---- validation: everything before Ray starts ------------------------------------------------

def make_plan(args: argparse.Namespace) -> Plan:
    """Resolve the spec, overrides and destinations; ValueError on any bad input."""
    from orchestrator.tracking import resolve_tracking_uri

    from orchestrator.reports import resolve_reports

    spec = get_sweep(args.name).with_overrides(parse_sets(args.set), epochs=args.epochs, seeds=args.seeds, smoke=args.smoke)
    resolve_reports(spec.reports)  # an unknown report would otherwise fail only after every trial trained
    for flag, value, minimum in (("--cpus-per-trial", args.cpus_per_trial, 0), ("--gpus-per-trial", args.gpus_per_trial, 0),
                                 ("--max-concurrent", args.max_concurrent, 1)):
        if value is not None and not value >= minimum:
            raise ValueError(f"{flag} {value}: expected a number >= {minimum}")
    if args.search == "optuna" and args.trials < 1:
        raise ValueError(f"--trials {args.trials}: --search optuna needs --trials N with N >= 1")
    if args.search == "grid" and args.trials:
        raise ValueError(f"--trials {args.trials}: only meaningful with --search optuna")
    cpus = spec.cpus_per_trial if args.cpus_per_trial is None else args.cpus_per_trial
    gpus = spec.gpus_per_trial if args.gpus_per_trial is None else args.gpus_per_trial
    if args.trials_per_gpu is not None:
        if args.trials_per_gpu < 1:
            raise ValueError(f"--trials-per-gpu {args.trials_per_gpu}: expected an integer >= 1")
        if args.gpus_per_trial is not None:
            raise ValueError(f"--trials-per-gpu {args.trials_per_gpu} and --gpus-per-trial {args.gpus_per_trial:g}: "
                             "give one of them")
        gpus = 1.0 / args.trials_per_gpu
    if cpus == 0 and gpus == 0:
        raise ValueError("--cpus-per-trial 0 with no GPU: a trial needs at least one of them")
    storage = Path(args.storage).expanduser().resolve()
    check_writable(storage, "--storage")
    if args.resume:
        run_name = find_resumable(storage, spec, args.search)
    else:
        run_name = f"{spec.name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    options = LaunchOptions(
        storage_path=storage,
        run_name=run_name,
        data_dir=Path(args.data_dir).expanduser().resolve(),
        cpus_per_trial=cpus,
        gpus_per_trial=gpus,
        max_concurrent=args.max_concurrent,
        search=args.search,
        trials=args.trials,
    )
    return Plan(spec, options, resolve_tracking_uri(args.tracking_uri), args.resume, args.address)


def check_writable(directory: Path, flag: str) -> None:
    """ValueError unless ``directory`` exists and takes a file, or can be created where it would go."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    try:  # a real write: permission bits say nothing for root or read-only file systems
        if not existing.is_dir():
            raise NotADirectoryError(existing)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise ValueError(f"{flag} {directory}: {existing} is not a writable directory") from None


def find_resumable(storage: Path, spec: SweepSpec, search: str) -> str:
    """The newest run of this sweep without final results; refuse it if the spec changed."""
    candidates = sorted(
        (p for p in storage.glob(f"{spec.name}_*") if (p / SWEEP_FILE).is_file() and not (p / "final.parquet").exists()),
        key=lambda p: p.name,
    )
    if not candidates:
        raise ValueError(f"--resume: no unfinished run of sweep {spec.name!r} under {storage}")
    run_dir = candidates[-1]
    saved = json.loads((run_dir / SWEEP_FILE).read_text())
    differences = spec_differences({**saved["spec"], "search": saved.get("search")}, {**spec.to_dict(), "search": search})
    if differences:
        raise ValueError(f"--resume: {run_dir.name} was started with another spec ({'; '.join(differences)}); "
                         "rerun with the same options, or start a new sweep without --resume")
    return run_dir.name


def spec_differences(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """``field: was X, now Y`` for every field (nested one level into dicts) that differs."""
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, "absent"), after.get(key, "absent")
        if isinstance(old, dict) and isinstance(new, dict):
            out += spec_differences(old, new, prefix=f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: was {old!r}, now {new!r}")
    return out


def run_metadata(spec: SweepSpec, options: LaunchOptions) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "paper": spec.paper, "objective": spec.objective,
            "dataset": spec.dataset, "axes": list(spec.grid), "metric": spec.metric, "mode": spec.mode,
            "reports": list(spec.reports), "run_name": options.run_name, "epochs": spec.epochs}


def provenance(spec: SweepSpec) -> dict[str, str]:
    """Tags of the parent MLflow run: what made it (code version, command, packages)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    tags = {"sweep": spec.name, "objective": spec.objective, "dataset": spec.dataset, "paper": spec.paper,
            "git_commit": commit, "command": " ".join(shlex.quote(a) for a in ["python", "-m", "orchestrator.sweep", *sys.argv[1:]]),
            "python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            tags[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"version.{package}"] = "not installed"
    return tags


# ---- the run -----------------------------------------------------------------------------

def run(plan: Plan) -> int:
    import ray

    from orchestrator.progress import ProgressCallback
    from orchestrator.tracking import MlflowTrackingCallback, check_tracking
    from orchestrator.tuner import build_tuner, restore_tuner

    spec, options = plan.spec, plan.options
    experiment_id = check_tracking(plan.tracking_uri, spec.name)

    # Tune's own per-trial tables and checkpoint chatter drown the one line per trial we print.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the loggers tuner.build_tuner names are kept
    started_ray = not ray.is_initialized()  # a caller (a notebook, the tests) may have started it
    if started_ray:
        ray.init(address=plan.address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    expected = spec.num_trials() if options.search == "grid" else options.trials
    try:
        if plan.address is not None:  # on a cluster: before anything is written
            from orchestrator.preflight import check_resources_can_be_met, check_storage_on_every_node

            try:
                check_resources_can_be_met(options.cpus_per_trial, options.gpus_per_trial)
                check_storage_on_every_node(options.storage_path)
            except ValueError as error:
                print(f"error: {error}", file=sys.stderr)
                return EXIT_USAGE
        options.run_dir.mkdir(parents=True, exist_ok=True)
        if not plan.resume:
            sweep_record = {"spec": spec.to_dict(), "search": options.search, "trials": options.trials,
                            "tracking_uri": plan.tracking_uri, "command": sys.argv}
            (options.run_dir / SWEEP_FILE).write_text(json.dumps(sweep_record, indent=2))
        print(f"sweep {spec.name}: {expected} trials -> {options.run_dir}", flush=True)
        if plan.resume:
            tuner = restore_tuner(options)
        else:
            callbacks = [
                MlflowTrackingCallback(plan.tracking_uri, spec.name, options.run_name, provenance(spec),
                                       {k: v for k, v in spec.base_config().items() if k not in spec.grid}),
                ProgressCallback(expected, list(spec.grid), [spec.metric, "test/rate_bits"]),
            ]
            tuner = build_tuner(spec, options, callbacks)
        result_grid = tuner.fit()
    except BaseException:
        if started_ray:
            ray.shutdown()
        raise
    # Stopping local Ray takes about 1.3 s of waiting for its processes; parquet and reports need
    # no Ray, so they are written meanwhile.
    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown") if started_ray else None
    if stopping is not None:
        stopping.start()
    try:
        return _write_outputs(plan, result_grid, expected, experiment_id)
    finally:
        if stopping is not None:
            stopping.join()


def _write_outputs(plan: Plan, result_grid, expected: int, experiment_id: str) -> int:
    """Parquet, reports and the parent run's artifacts of a finished sweep; the exit code."""
    from orchestrator import results as results_io
    from orchestrator.reports import build_reports
    from orchestrator.tracking import find_parent_run, log_artifacts

    spec, options = plan.spec, plan.options
    epoch_rows, final_rows, evaluation_rows = results_io.trial_rows(result_grid, spec.grid)
    statuses = [row["status"] for row in final_rows]
    if "INCOMPLETE" in statuses or len(final_rows) < expected:
        done = statuses.count("TERMINATED") + statuses.count("ERROR")
        print(f"sweep interrupted: {done} of {expected} trials finished. Continue it with:\n"
              f"  python -m orchestrator.sweep {' '.join(shlex.quote(a) for a in sys.argv[1:] if a != '--resume')} --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    written = results_io.write_results(options.run_dir, epoch_rows, final_rows, run_metadata(spec, options),
                                       evaluation_rows)
    report = build_reports(options.run_dir)
    parent = find_parent_run(plan.tracking_uri, experiment_id, options.run_name)
    if parent is not None:
        log_artifacts(plan.tracking_uri, parent, report.parent)

    failed = statuses.count("ERROR")
    print(f"\nsweep {spec.name}: {statuses.count('TERMINATED')} trials finished, {failed} failed")
    print(f"results: {', '.join(str(p) for p in written)}")
    print(f"report:  {report}  (and {report.with_suffix('.html')})")
    print(f"mlflow:  mlflow ui --backend-store-uri {plan.tracking_uri}   "
          f"then open http://127.0.0.1:5000/#/experiments/{experiment_id}")
    return EXIT_TRIALS_FAILED if failed else 0


def check_resources(available: dict[str, float], options: LaunchOptions) -> None:
    """Refuse a request that this (local) cluster can never meet, instead of waiting forever."""
    for name, need in (("CPU", options.cpus_per_trial), ("GPU", options.gpus_per_trial)):
        have = available.get(name, 0.0)
        if need > have:
            flag = f"--{name.lower()}s-per-trial"
            raise ValueError(f"{flag} {need:g}: this machine has {have:g} {name}(s); lower it or pass --address of a cluster")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print_list()
        return 0
    if not args.name:
        print("error: name a sweep to run (python -m orchestrator.sweep --list shows them)", file=sys.stderr)
        return EXIT_USAGE
    try:
        plan = make_plan(args)
        available = None if plan.address is not None else {"CPU": float(os.cpu_count() or 1),
                                                           "GPU": float(_local_gpus())}
        if args.dry_run:
            print_dry_run(plan, available)
            return 0
        from orchestrator.tracking import check_tracking

        check_tracking(plan.tracking_uri, plan.spec.name)
        if available is not None:
            check_resources(available, plan.options)
            print(concurrency_summary(plan.options, available), flush=True)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run(plan)


def _local_gpus() -> int:
    """GPUs Ray would see here, without importing torch (nvidia-smi if present)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


if __name__ == "__main__":
    sys.exit(main())
