"""What ``--list`` and ``--dry-run`` print: the sweeps, and one sweep's plan without running it."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from search_spaces import get_sweep, sweep_names
from search_spaces.spec import SweepSpec
from trainables.memory import EstimateFailed, estimate_in_subprocess, format_bytes
from trainables.objectives import ObjectiveSlice, get_slice

from orchestrator.tuner import LaunchOptions

if TYPE_CHECKING:
    from orchestrator.sweep import Plan


def print_list() -> None:
    """One row per registered sweep under a header, each column as wide as its longest entry.

    An objective from another installed distribution (an ``ib_sweeps.objectives`` entry point) is followed by that
    distribution's name, e.g. ``toy_linear (ib-sweeps-toy)``, so a sweep's origin is visible beside ours.
    """
    header = ("sweep", "trials", "objective", "dataset", "paper")
    rows = [(name, str(spec.num_trials()), _objective_cell(spec), spec.dataset, spec.paper)
            for name, spec in ((name, get_sweep(name)) for name in sweep_names())]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i == 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join([*cells, row[-1]]))


def _objective_cell(spec: SweepSpec) -> str:
    if spec.is_zoo:
        return f"{spec.objective} ({','.join(m.objective for m in spec.members)})"
    source = get_slice(spec.objective).source
    return spec.objective if source == ObjectiveSlice.source else f"{spec.objective} ({source})"  # default: this project


def print_dry_run(plan: Plan, available: Mapping[str, float] | None = None) -> None:
    """The plan; ``available``: this machine's CPUs and GPUs, for a local run (None on a cluster)."""
    spec, options = plan.spec, plan.options
    print(f"sweep {spec.name}: {spec.description}")
    print(f"paper: {spec.paper}")
    if options.search == "optuna":
        ranges = {k: spec.ranges.get(k, ("choice", *spec.grid[k])) for k in spec.grid}
        print(f"search: Optuna TPE, {options.trials} trials over {ranges}, optimising {spec.metric} ({spec.mode})")
    else:
        axes = list(spec.axes()) + ["seed"]
        configs = spec.trial_configs()
        if spec.is_zoo:
            print(f"trials: {len(configs)} = (" + " + ".join(
                f"{math.prod(len(v) for v in {**m.grid, **spec.grid}.values())} {m.objective}" for m in spec.members)
                + f") x {len(spec.seeds)} seed(s)")
        else:
            print(f"trials: {len(configs)} = {' x '.join(f'{len(spec.grid[a])} {a}' for a in spec.grid)} x "
                  f"{len(spec.seeds)} seed(s)")
        for i, config in enumerate(configs):
            print(f"  {i:>4}  " + "  ".join(f"{a}={config[a]}" for a in axes if a in config))
    fixed = {k: v for k, v in spec.base_config().items() if k not in spec.axes()}
    print("fixed config: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    print(f"resources per trial: {options.cpus_per_trial:g} CPU, {options.gpus_per_trial:g} GPU; "
          f"max concurrent: {options.max_concurrent or 'as resources allow'}")
    if available is not None:
        print(concurrency_summary(options, available))
    if options.gpus_per_trial > 0:
        print(memory_summary(spec, options))
    print(f"ray: {plan.address or 'local (started by this command)'}")
    print(f"results: {options.run_dir}")
    print(f"data: {options.data_dir}")
    print(f"mlflow: {plan.tracking_uri} (experiment {spec.name!r})")


def memory_summary(spec: SweepSpec, options: LaunchOptions, *, most_configs: int = 64) -> str:
    """The largest per-trial device-memory estimate over the grid, and what packing makes of it.

    A child process (:func:`trainables.memory.estimate_in_subprocess`) builds each distinct model on the ``meta``
    device (no memory, no compute), because the driver never imports torch. If it fails, the line says why and the
    rest of the dry run is still printed.
    """
    configs = spec.trial_configs()
    distinct = list({json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True): c
                     for c in configs}.values())[:most_configs]
    try:
        estimates = estimate_in_subprocess(distinct)
    except EstimateFailed as error:
        return f"device memory per trial: not estimated ({error})"
    largest = max(estimates, key=lambda e: e.total_bytes)
    per_gpu = max(1, round(1 / options.gpus_per_trial)) if options.gpus_per_trial < 1 else 1
    checked = f"largest of {len(distinct)} configs" if len(distinct) > 1 else "one config"
    lines = [f"device memory per trial (estimate, {checked}): {largest.describe()}"]
    if per_gpu > 1:
        lines.append(f"  {per_gpu} trials per GPU: {format_bytes(per_gpu * largest.total_bytes)} of tensors, "
                     "plus a CUDA context per trial")
    return "\n".join(lines)


def concurrency_summary(options: LaunchOptions, available: Mapping[str, float]) -> str:
    """How many trials this machine runs at once, and which resource limits it.

    ``--trials-per-gpu 8`` on a 16-CPU node with the sweep's 4 CPUs a trial still runs 4 at a time:
    Tune gives each trial its CPUs too. The line says so, and which ``--cpus-per-trial`` would let
    the GPUs be the limit.
    """
    cpus, gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    limits = {name: math.floor(have / need + 1e-9)
              for name, have, need in (("CPU", cpus, options.cpus_per_trial), ("GPU", gpus, options.gpus_per_trial))
              if need > 0}
    at_once = min(limits.values())
    machine = f"this machine ({cpus:g} CPU, {gpus:g} GPU)"
    if at_once == 0:
        short = ", ".join(name for name, fits in limits.items() if fits == 0)
        return f"{machine}: cannot hold one trial (too few {short}); the run would be refused here"
    line = f"{machine}: at most {at_once} trial(s) at once"
    if options.max_concurrent and options.max_concurrent < at_once:
        return f"{line}; --max-concurrent {options.max_concurrent} runs {options.max_concurrent}"
    if limits.get("CPU", math.inf) < limits.get("GPU", 0):
        line += (f", limited by its CPUs (--cpus-per-trial {cpus / limits['GPU']:g} would run "
                 f"{limits['GPU']}, as the GPU share allows)")
    return line
