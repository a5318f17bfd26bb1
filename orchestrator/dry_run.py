"""What ``--list`` and ``--dry-run`` print: the sweeps, and one sweep's plan without running it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from search_spaces import get_sweep, sweep_names
from search_spaces.spec import SweepSpec

from orchestrator.tuner import LaunchOptions

if TYPE_CHECKING:
    from orchestrator.sweep import Plan


def print_list() -> None:
    for name in sweep_names():
        spec = get_sweep(name)
        print(f"{name:<26} {spec.num_trials():>4} trials  {spec.objective:<8} {spec.dataset:<9} {spec.paper}")


def print_dry_run(plan: Plan) -> None:
    spec, options = plan.spec, plan.options
    print(f"sweep {spec.name}: {spec.description}")
    print(f"paper: {spec.paper}")
    if options.search == "optuna":
        ranges = {k: spec.ranges.get(k, ("choice", *spec.grid[k])) for k in spec.grid}
        print(f"search: Optuna TPE, {options.trials} trials over {ranges}, optimising {spec.metric} ({spec.mode})")
    else:
        axes = list(spec.grid) + ["seed"]
        configs = spec.trial_configs()
        print(f"trials: {len(configs)} = {' x '.join(f'{len(spec.grid[a])} {a}' for a in spec.grid)} x {len(spec.seeds)} seed(s)")
        for i, config in enumerate(configs):
            print(f"  {i:>4}  " + "  ".join(f"{a}={config[a]}" for a in axes))
    fixed = {k: v for k, v in spec.base_config().items() if k not in spec.grid}
    print("fixed config: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    print(f"resources per trial: {options.cpus_per_trial:g} CPU, {options.gpus_per_trial:g} GPU; "
          f"max concurrent: {options.max_concurrent or 'as resources allow'}")
    if options.gpus_per_trial > 0:
        print(memory_summary(spec, options))
    print(f"ray: {plan.address or 'local (started by this command)'}")
    print(f"results: {options.run_dir}")
    print(f"data: {options.data_dir}")
    print(f"mlflow: {plan.tracking_uri} (experiment {spec.name!r})")


def memory_summary(spec: SweepSpec, options: LaunchOptions, *, most_configs: int = 64) -> str:
    """The largest per-trial device-memory estimate over the grid, and what packing makes of it.

    Imports torch and builds each distinct model on the ``meta`` device (no memory, no compute).
    """
    import warnings

    with warnings.catch_warnings():  # CompressAI's import warns about torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from trainables.memory import estimate_trial_memory, format_bytes

    configs = spec.trial_configs()
    distinct = list({json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True): c
                     for c in configs}.values())[:most_configs]
    estimates = [estimate_trial_memory(config) for config in distinct]
    largest = max(estimates, key=lambda e: e.total_bytes)
    per_gpu = max(1, round(1 / options.gpus_per_trial)) if options.gpus_per_trial < 1 else 1
    checked = f"largest of {len(distinct)} configs" if len(distinct) > 1 else "one config"
    lines = [f"device memory per trial (estimate, {checked}): {largest.describe()}"]
    if per_gpu > 1:
        lines.append(f"  {per_gpu} trials per GPU: {format_bytes(per_gpu * largest.total_bytes)} of tensors, "
                     "plus a CUDA context per trial")
    return "\n".join(lines)
