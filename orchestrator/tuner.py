"""SweepSpec + launch options -> ``ray.tune.Tuner``.

Resources, searcher (grid or Optuna TPE), failure and checkpoint config, and the MLflow callback
are all decided here; the trainable itself (``trainables.harness.train``) is referenced by name
so the driver never imports a model or torch.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ray import tune
from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search import Searcher

from search_spaces.spec import SweepSpec

TRAINABLE = "trainables.harness:train"
COMPILE_CACHE = "torch_compile_cache"  # under storage_path: torch.compile's kernels, shared by the sweep's trials


@dataclass(frozen=True)
class LaunchOptions:
    """Where and how a sweep runs; none of it changes what a trial computes."""

    storage_path: Path  # absolute: Tune results, checkpoints, parquet and reports
    run_name: str  # the Tune experiment's directory under storage_path
    data_dir: Path  # absolute: datasets are downloaded or read here
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None = None  # None: as many as the resources allow (grid), or 2 (Optuna)
    search: str = "grid"  # grid | optuna
    trials: int = 0  # Optuna samples

    @property
    def run_dir(self) -> Path:
        return self.storage_path / self.run_name


def trainable(options: LaunchOptions) -> Any:
    """The harness with its static arguments and resources, imported lazily (in Ray's workers too)."""
    module, name = TRAINABLE.split(":")

    def train(config: dict[str, Any]) -> None:
        for key, value in worker_environment(options).items():
            os.environ.setdefault(key, value)
        getattr(importlib.import_module(module), name)(config, data_dir=str(options.data_dir))

    train.__name__ = "train"
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    return tune.with_resources(train, resources)


def worker_environment(options: LaunchOptions) -> dict[str, str]:
    """Variables a trial's process sets (unless already set) before it imports torch.

    ``TORCHINDUCTOR_CACHE_DIR`` on the sweep's storage: where trials compile (``--set compile=on``
    or ``cudagraphs``), the first trial compiles, and the others (on every node that
    mounts the storage) load its kernels.
    """
    return {"TORCHINDUCTOR_CACHE_DIR": str(options.storage_path / COMPILE_CACHE)}


class TrialListSearcher(Searcher):
    """Suggests a fixed list of trials in order, then ``FINISHED``: how a zoo's trials reach Tune.

    A zoo's trials are the union of its members' grids, each member with keys the others lack, so no single
    ``tune.grid_search`` space holds them; each suggestion is what a trial adds to the shared ``param_space``
    (its objective, its own keys and axes, its seed), and Tune merges the two into the trial's flat config. The
    position in the list is the searcher's state, saved with the experiment, so a resumed run suggests only the
    trials it has not started.
    """

    def __init__(self, trials: list[dict[str, Any]], metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self.trials = [dict(trial) for trial in trials]
        self.position = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.position >= len(self.trials):
            return Searcher.FINISHED
        self.position += 1
        return dict(self.trials[self.position - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # a fixed list learns nothing from results

    def get_state(self) -> dict[str, Any]:
        return {"trials": self.trials, "position": self.position}

    def set_state(self, state: dict[str, Any]) -> None:
        self.trials, self.position = state["trials"], state["position"]

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps(self.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(json.loads(Path(checkpoint_path).read_text()))


def zoo_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    """Each trial of a zoo as what it adds to (or changes in) the shared base config."""
    base = spec.base_config()
    return [{key: value for key, value in trial.items() if key not in base or base[key] != value
             or key in ("objective", "seed")} for trial in spec.trial_configs()]


def param_space(spec: SweepSpec, search: str) -> dict[str, Any]:
    """The grid as ``tune.grid_search`` axes, or Optuna's distributions over the spec's ranges; a zoo's shared config
    (its trials come from :class:`TrialListSearcher`)."""
    space: dict[str, Any] = spec.base_config()
    if spec.is_zoo:
        return space
    if search == "grid":
        for key, values in spec.grid.items():
            space[key] = tune.grid_search(list(values))
        space["seed"] = tune.grid_search(list(spec.seeds))
        return space
    for key, values in spec.grid.items():
        kind, low, high = spec.ranges.get(key, ("choice", None, None))
        if kind == "uniform":
            space[key] = tune.uniform(low, high)
        elif kind == "loguniform":
            space[key] = tune.loguniform(low, high)
        elif kind == "int":
            space[key] = tune.randint(int(low), int(high) + 1)
        else:
            space[key] = tune.choice(list(values))
    space["seed"] = spec.seeds[0]
    return space


def build_tuner(spec: SweepSpec, options: LaunchOptions, callbacks: list[Callable]) -> Tuner:
    search_alg = None
    num_samples = 1
    max_concurrent = options.max_concurrent
    if spec.is_zoo:
        search_alg = TrialListSearcher(zoo_trials(spec), metric=spec.metric, mode=spec.mode)
        num_samples = spec.num_trials()
        max_concurrent = max_concurrent or num_samples  # a cap, as Tune limits a searcher it is given none
    elif options.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric=spec.metric, mode=spec.mode, seed=spec.seeds[0])
        num_samples = options.trials
        max_concurrent = max_concurrent or 2  # with a searcher Tune otherwise runs one at a time
    return Tuner(
        trainable(options),
        param_space=param_space(spec, options.search),
        tune_config=TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=search_alg,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent,
            # One worker process runs trial after trial: no process start and torch import per
            # trial. Every trial reseeds and rebuilds its model, data and optimiser (harness.run_trial).
            reuse_actors=True,
        ),
        run_config=RunConfig(
            name=options.run_name,
            storage_path=str(options.storage_path),
            # Tune's result.json and progress.csv (results.py reads them), without its TensorBoard
            # logger (orchestrator.console.quiet sets TUNE_DISABLE_AUTO_CALLBACK_LOGGERS): MLflow is the dashboard.
            callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()],
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            verbose=0,  # orchestrator.progress prints one line per trial instead
        ),
    )


def restore_tuner(options: LaunchOptions) -> Tuner:
    """Continue an interrupted sweep: finished trials are kept, unfinished and errored ones go on."""
    return Tuner.restore(str(options.run_dir), trainable=trainable(options), resume_unfinished=True,
                         resume_errored=True)
