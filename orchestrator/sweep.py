"""``python -m orchestrator.sweep NAME [options]``: spec -> Tuner -> results -> reports.

Everything a user can get wrong (sweep name, ``--set``, values, tracking URI, resume target) is
checked before Ray starts; each mistake is one line on stderr and exit code 2. Then the sweep
runs under Ray Tune, every trial is logged to MLflow from this process, and the results are
written as parquet and turned into reports, which are also attached to the sweep's MLflow run.

Ctrl-C stops a sweep cleanly at any moment (``orchestrator.interrupt``): what has finished is
written to parquet (unfinished trials as ``INCOMPLETE`` rows) and reported, the MLflow runs
left open are marked KILLED, and the command prints the ``--resume`` line that continues it and
exits 130. ``sweep.json``'s ``state`` (``running``, ``interrupted``, ``finished``) is what
``--resume`` looks for.
"""

from __future__ import annotations

import argparse
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

from search_spaces import get_sweep
from search_spaces.spec import SweepSpec, parse_sets  # noqa: F401 - parse_sets: this CLI's API too

from orchestrator import outputs
from orchestrator.dry_run import concurrency_summary, print_dry_run, print_list
from orchestrator.interrupt import EXIT_INTERRUPTED, CtrlC
from orchestrator.run_record import RUN_TIME_FORMAT, RUNNING, SWEEP_FILE, find_resumable, record_state
from orchestrator.tuner import LaunchOptions

EXIT_USAGE = 2
DEFAULT_STORAGE, DEFAULT_DATA_DIR = "./ray_results", "./data"
PACKAGES = ("torch", "torchvision", "ray", "mlflow", "compressai", "optuna", "pyarrow", "scikit-learn", "numpy")


@dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    options: LaunchOptions
    tracking_uri: str
    resume: bool
    address: str | None
    resume_command: str = ""  # the command line that continues this sweep (see resume_command)


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
    p.add_argument("--storage", default=os.environ.get("IB_STORAGE", DEFAULT_STORAGE),
                   help="where Tune results, parquet and reports go; on a cluster, a path every node "
                        "mounts (default: $IB_STORAGE, else ./ray_results)")
    p.add_argument("--data-dir", default=os.environ.get("IB_DATA_DIR", DEFAULT_DATA_DIR),
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
    if args.search == "optuna" and spec.is_zoo:
        raise ValueError(f"--search optuna: {spec.name} is a zoo, whose trials are its members' grids; use --search grid")
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
        run_name = f"{spec.name}_{time.strftime(RUN_TIME_FORMAT)}"
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
    return Plan(spec, options, resolve_tracking_uri(args.tracking_uri), args.resume, args.address,
                resume_command(args))


def resume_command(args: argparse.Namespace) -> str:
    """``python -m orchestrator.sweep NAME [options] --resume``: the command that continues this sweep.

    Every option that shapes the trials, their resources or where things go is repeated, quoted
    for a POSIX shell; destinations that came from environment variables are written out, so the
    line also works in a fresh shell.
    """
    words = ["python", "-m", "orchestrator.sweep", args.name]
    if args.smoke:
        words.append("--smoke")
    for flag, value in (("--epochs", args.epochs), ("--seeds", args.seeds)):
        if value is not None:
            words += [flag, str(value)]
    for item in args.set:
        words += ["--set", item]
    for flag, value in (("--cpus-per-trial", args.cpus_per_trial), ("--gpus-per-trial", args.gpus_per_trial),
                        ("--trials-per-gpu", args.trials_per_gpu), ("--max-concurrent", args.max_concurrent),
                        ("--address", args.address)):
        if value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if args.search != "grid":
        words += ["--search", args.search, "--trials", str(args.trials)]
    for flag, value, default in (("--storage", args.storage, DEFAULT_STORAGE), ("--data-dir", args.data_dir, DEFAULT_DATA_DIR)):
        if value != default:
            words += [flag, value]
    tracking_uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking_uri:
        words += ["--tracking-uri", tracking_uri]
    return " ".join(shlex.quote(word) for word in [*words, "--resume"])


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

def run(plan: Plan, ctrl_c: CtrlC | None = None) -> int:
    """Run the planned sweep; the exit code: 0, 1 if a trial failed, 130 if it was interrupted.

    ``ctrl_c``: the Ctrl-C handling :func:`main` installed before its own checks; without it,
    the run installs its own.
    """
    if ctrl_c is None:
        with CtrlC() as own:
            return run(plan, own)
    import ray

    from orchestrator.console import hold, quiet
    from orchestrator.tracking import check_tracking

    spec, options = plan.spec, plan.options
    experiment_id = check_tracking(plan.tracking_uri, spec.name)
    expected = spec.num_trials() if options.search == "grid" else options.trials
    if plan.address is None:  # recorded before Ray starts, so a Ctrl-C from here on leaves a run to resume
        _record_start(plan)
        quiet(options.run_dir)  # Ray's, Tune's and MLflow's messages to run_dir/sweep.log; before ray.init
    else:  # on a cluster nothing is written before the checks below: the messages wait in memory
        hold()
    started_ray = False
    result_grid = None
    try:
        if not ray.is_initialized() and not ctrl_c.requested:  # a caller (a notebook, the tests) may have started it
            started_ray = True
            ray.init(address=plan.address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        if plan.address is not None and not ctrl_c.requested:  # on a cluster: before anything is written
            from orchestrator.preflight import check_resources_can_be_met, check_storage_on_every_node

            try:
                check_resources_can_be_met(options.cpus_per_trial, options.gpus_per_trial)
                check_storage_on_every_node(options.storage_path)
            except ValueError as error:
                print(f"error: {error}", file=sys.stderr)
                return EXIT_USAGE
            _record_start(plan)
            quiet(options.run_dir)
        if not ctrl_c.requested:
            outputs.say(f"sweep {spec.name}: {expected} trials -> {options.run_dir}")
            tuner = _tuner(plan, expected)
            ctrl_c.enter("fitting")
            if not ctrl_c.requested:
                result_grid = tuner.fit()
        ctrl_c.enter("writing")
    except KeyboardInterrupt:  # Ctrl-C twice: no outputs; Tune's saved state is what --resume continues from
        ctrl_c.enter("closing")
        if started_ray:
            ray.shutdown()
        return outputs.interrupted(plan, experiment_id, expected, None)
    except BaseException:
        ctrl_c.enter("closing")
        if started_ray:
            ray.shutdown()
        raise
    # Stopping local Ray waits for its processes (docs/benchmarks.md, section "Sweep overhead");
    # parquet and reports need no Ray, so they are written meanwhile.
    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown") if started_ray else None
    if stopping is not None:
        stopping.start()
    try:
        return outputs.write_outputs(plan, result_grid, expected, experiment_id, ctrl_c)
    except KeyboardInterrupt:  # Ctrl-C twice while the outputs were written
        ctrl_c.enter("closing")
        return outputs.interrupted(plan, experiment_id, expected, None)
    finally:
        ctrl_c.enter("closing")
        if stopping is not None:
            stopping.join()


def _record_start(plan: Plan) -> None:
    """sweep.json in the run directory: the spec a resume must match, and the state ``running``."""
    options = plan.options
    if not (options.run_dir / SWEEP_FILE).is_file():
        options.run_dir.mkdir(parents=True, exist_ok=True)
        record_state(options.run_dir, RUNNING, {
            "spec": plan.spec.to_dict(), "search": options.search, "trials": options.trials,
            "tracking_uri": plan.tracking_uri, "command": sys.argv})
    elif plan.resume:
        record_state(options.run_dir, RUNNING)


def _tuner(plan: Plan, expected: int):
    """A new Tuner, or the saved one of the run being resumed.

    A run interrupted before Tune saved its first experiment state (while Ray started) has
    nothing to restore: it starts afresh, under its name.
    """
    from orchestrator.progress import ProgressCallback
    from orchestrator.mlflow_callback import MlflowTrackingCallback
    from orchestrator.tuner import build_tuner, restore_tuner

    spec, options = plan.spec, plan.options
    if plan.resume and any(options.run_dir.glob("experiment_state-*.json")):
        MlflowTrackingCallback.resume_tracking_uri = plan.tracking_uri  # the store's address now
        try:
            return restore_tuner(options)  # unpickles the callbacks here, not later
        finally:
            MlflowTrackingCallback.resume_tracking_uri = None  # nothing else in this process inherits it
    callbacks = [
        MlflowTrackingCallback(plan.tracking_uri, spec.name, options.run_name, provenance(spec),
                               {k: v for k, v in spec.base_config().items() if k not in spec.axes()}),
        ProgressCallback(expected, list(spec.axes()), [spec.metric, "test/rate_bits"]),
    ]
    return build_tuner(spec, options, callbacks)


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
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the sweep's Ctrl-C handling is in place; nothing was written
        print("\ninterrupted before the sweep started; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    with CtrlC() as ctrl_c:  # from the first slow step on (creating the MLflow store)
        try:
            from orchestrator.console import hold
            from orchestrator.tracking import check_tracking

            hold()  # creating a new MLflow store logs its schema migrations: to sweep.log, not the console
            check_tracking(plan.tracking_uri, plan.spec.name)
            if available is not None:
                check_resources(available, plan.options)
                print(concurrency_summary(plan.options, available), flush=True)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        return run(plan, ctrl_c)


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
