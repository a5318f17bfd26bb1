"""The one Ray Tune function trainable that trains every objective.

``train(config, data_dir=...)`` parses the flat trial config once into its typed parts
(:func:`trainables.config.parse_trial`: training, device, attacks, information plane, the
objective's own), seeds everything, picks the device Ray assigned, loads the dataset as tensors on
that device, builds the objective named in the config, and loops over epochs:
one ``tune.report`` per epoch (sent from a background thread: ``trainables.reporting``), a
checkpoint every ``checkpoint_every`` epochs but at most one per ``checkpoint_min_seconds``, and
one at the last epoch.
A trial restarted by Tune resumes from ``tune.get_checkpoint()``; a checkpoint written under a
different config is refused (the flat dict is compared, as Tune and MLflow record it). A
non-finite training term ends the trial with an error that names the epoch and the term; Tune
records the error and the sweep goes on.

Metrics are accumulated on the device and read once per epoch (no host sync per step).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.checkpoints import (  # noqa: F401 - CheckpointMismatchError: the harness's API too
    CHECKPOINT_FILE, CheckpointMismatchError, checkpoint_candidates, restore, save_checkpoint)
from trainables.config import TrainingConfig, TrialConfig, parse_trial
from trainables.data import (
    Dataset, batch_indices, class_balanced_batch_indices, crop_flip, evaluation_subset, load_dataset)
from trainables.ema import SyncFreeEMA
from trainables.evaluation import run_evaluations
from trainables.evaluation.info_plane import info_plane
from trainables.fast_path import FastPath
from trainables.objectives import build_objective
from trainables.objectives.base import Objective
from trainables.reporting import BackgroundReporter

logger = logging.getLogger(__name__)

FAULT_VARIABLE = "IB_SWEEPS_FAULT"
EVALUATIONS_KEY = "evaluations"  # the final report's JSON rows for evaluations.parquet


class NonFiniteLossError(FloatingPointError):
    """A training term became NaN or infinite."""


def train(config: dict[str, Any], *, data_dir: str) -> None:
    """Ray Tune entry point; see the module docstring."""
    from ray import tune  # here, so run_trial and the benchmarks need no Ray

    device, cpus = _trial_device()
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(cpus)))
    with BackgroundReporter(_tune_report) as report:  # training goes on while the driver handles a result
        run_trial(config, data_dir=data_dir, device=device, report=report,
                  checkpoint=checkpoint_candidates(tune.get_checkpoint()))


def run_trial(config: Mapping[str, Any], *, data_dir, device, report, checkpoint=None) -> None:
    """Train one flat trial config; ``report(metrics, checkpoint_dir_or_None)`` is called once per epoch.

    The config is parsed once into a :class:`~trainables.config.TrialConfig` (a bad value raises
    ValueError naming it before anything is built); the flat dict itself goes only where a flat
    dict is the point: the checkpoint's record of the config and the fault-injection marker.
    ``checkpoint`` is a ``tune.Checkpoint`` or a list of them, newest first: the first that loads
    is resumed from (see :func:`restore`). Split from :func:`train` so the loop can be run and
    tested without Ray.
    """
    config = dict(config)
    trial = parse_trial(config)
    training = trial.training
    _seed_everything(training.seed)
    data = load_dataset(
        training.dataset,
        data_dir=data_dir,
        device=device,
        train_subset=training.train_subset,
        test_subset=training.test_subset,
        seed=training.seed,
    )
    objective, optimizer, aux_optimizer, scheduler, ema, fast = build_training(trial, data, device)
    epochs = training.epochs
    generator = torch.Generator(device=device).manual_seed(training.seed)
    stateful = {"objective": objective, "optimizer": optimizer, "scheduler": scheduler}
    if aux_optimizer is not None:
        stateful["aux_optimizer"] = aux_optimizer
    if ema is not None:
        stateful["ema"] = ema

    candidates = checkpoint if isinstance(checkpoint, list) else [checkpoint] if checkpoint is not None else []
    start_epoch = restore(candidates, config, stateful, generator)
    resumed = bool(candidates)
    last_checkpoint = time.monotonic()

    for epoch in range(start_epoch + 1, epochs + 1):
        _inject_fault(config, epoch)
        objective.start_epoch(epoch)
        train_terms = train_epoch(objective, optimizer, aux_optimizer, ema, data, trial, generator, epoch, fast)
        if training.lr_schedule == "plateau":
            scheduler.step(train_terms["loss"])
        else:
            scheduler.step()
        model = ema.module if ema is not None else objective
        test_metrics = _evaluate(model, data, training.eval_batch_size, fast)
        metrics = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        metrics.update({f"train/{k}": v for k, v in train_terms.items()})
        metrics.update({f"test/{k}": v for k, v in test_metrics.items()})
        metrics.update(_epoch_metrics(model, data, epoch, trial))
        if resumed:  # the first report of a restarted trial says where it restarted from
            metrics["trial/resumed_from_epoch"] = start_epoch
            resumed = False
        if epoch == epochs:  # the evaluation suite runs once, after training
            metrics.update(_final_evaluations(model, data, trial))
        if epoch == epochs or checkpoint_due(training, epoch, time.monotonic() - last_checkpoint):
            with tempfile.TemporaryDirectory() as directory:
                save_checkpoint(Path(directory) / CHECKPOINT_FILE, config, stateful, generator, epoch)
                report(metrics, directory)
            last_checkpoint = time.monotonic()
        else:
            report(metrics, None)


def checkpoint_due(training: TrainingConfig, epoch: int, seconds_since_last: float) -> bool:
    """A checkpoint every ``checkpoint_every`` epochs, but none sooner than ``checkpoint_min_seconds``
    after the previous one (or the trial's start). Each checkpoint costs a save, Tune's copy into
    the trial directory and, every second one (``num_to_keep=2``), a snapshot of the experiment's
    state on the driver: for epochs of a fraction of a second that is most of a sweep's overhead
    (docs/benchmarks.md). A trial that dies repeats at most about that many seconds more work."""
    return (epoch % training.checkpoint_every == 0
            and seconds_since_last >= training.checkpoint_min_seconds)


def _parsed(trial: TrialConfig | Mapping[str, Any]) -> TrialConfig:
    """``trial`` itself, or the flat config parsed (the benchmarks and tests drive the loop's parts with one)."""
    return trial if isinstance(trial, TrialConfig) else parse_trial(trial)


def build_training(trial: TrialConfig | Mapping[str, Any], data: Dataset, device: torch.device):
    """The objective on ``device`` (laid out and compiled as ``trial.device`` asks), its optimisers,
    LR scheduler, EMA copy (or None) and :class:`FastPath`, as the training loop uses them."""
    trial = _parsed(trial)
    training = trial.training
    objective = build_objective(trial, data.input_shape, data.num_classes).to(device)
    fast = FastPath.for_model(trial.device, device, objective)
    fast.prepare_model(objective)
    optimizer, aux_optimizer = _optimizers(objective, training)
    if training.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training.epochs)
    elif training.lr_schedule == "plateau":  # lr x lr_decay after lr_patience epochs without a lower train/loss;
        # an absolute threshold, since a relative one accepts a worse loss as progress when the loss is negative
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=training.lr_decay, patience=training.lr_patience, threshold=1e-4, threshold_mode="abs")
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=training.lr_decay_every,
                                                    gamma=training.lr_decay)
    ema = None
    if training.ema_decay > 0:
        ema = SyncFreeEMA(objective, training.ema_decay)  # warmed-up EMA, no host sync a step
    fast.maybe_compile(objective)  # after the EMA copy, which stays eager
    return objective, optimizer, aux_optimizer, scheduler, ema, fast


def _optimizers(objective: Objective,
                training: TrainingConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam on the main parameters; a second Adam on the auxiliary ones (CompressAI's recipe), if any."""
    aux = list(objective.aux_parameters())
    aux_ids = {id(p) for p in aux}
    main = [p for p in objective.parameters() if id(p) not in aux_ids]
    # fused on CUDA: one kernel for the whole update instead of several per tensor. Not on the CPU,
    # where it would change the rounding of every CPU result the docs quote.
    cuda = all(p.is_cuda for p in main)
    optimizer = torch.optim.Adam(main, lr=training.lr, betas=(training.adam_beta1, training.adam_beta2),
                                 weight_decay=training.weight_decay, fused=cuda or None)
    aux_optimizer = torch.optim.Adam(aux, lr=training.aux_lr, fused=cuda or None) if aux else None
    return optimizer, aux_optimizer


def train_epoch(objective: Objective, optimizer, aux_optimizer, ema, data: Dataset,
                trial: TrialConfig | Mapping[str, Any], generator, epoch: int, fast: FastPath) -> dict[str, float]:
    """One pass over the training set; the means of every term, read from the device once.

    A step is the objective's :meth:`~Objective.training_step` (compiled when ``compile`` asks),
    one backward, and each optimiser's step. The main optimiser's and the aux one's parameters
    are disjoint, and neither loss reaches the other's, so the order of the two steps is free.
    """
    training = _parsed(trial).training
    objective.train()
    sums = TermSums()
    if training.batch_sampler == "class_balanced":
        batches = class_balanced_batch_indices(data.train_y, training.batch_size, generator=generator)
    else:
        batches = batch_indices(len(data.train_y), training.batch_size, generator=generator,
                                device=data.train_y.device)
    for index in batches:
        x, y = data.train_x[index], data.train_y[index]
        if training.augment == "crop_flip":
            x = crop_flip(x, padding=training.crop_padding, generator=generator)
        with fast.autocast():
            terms, total = objective.training_step(fast.prepare_batch(x), y)
        optimizer.zero_grad(set_to_none=True)
        if aux_optimizer is not None:
            aux_optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if aux_optimizer is not None:
            aux_optimizer.step()
        if ema is not None:
            ema.update_parameters(objective)
        sums.add(terms, len(y))
    means = sums.means()
    bad = [name for name, value in means.items() if not np.isfinite(value)]
    if bad:
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {epoch}: term(s) {', '.join(repr(b) for b in bad)} "
            f"= {', '.join(str(means[b]) for b in bad)}"
        )
    return means


class TermSums:
    """Sums of named 0-d terms weighted by batch size, kept on the device as one vector: two
    kernels a batch (a stack and an add), and one device-to-host read for the means."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, terms: Mapping[str, torch.Tensor], n: int) -> None:
        values = torch.stack([value.detach().float() for value in terms.values()])
        if self.total is None:
            self.names, self.total = list(terms), values * n
        elif list(terms) != self.names:
            raise RuntimeError(f"an objective's terms changed between batches: {self.names} then {list(terms)}")
        else:
            self.total.add_(values, alpha=n)
        self.count += n

    def means(self) -> dict[str, float]:
        if self.total is None:
            return {}
        return dict(zip(self.names, (self.total.cpu().double() / max(self.count, 1)).tolist()))


@torch.no_grad()
def _evaluate(objective: Objective, data: Dataset, batch: int, fast: FastPath) -> dict[str, float]:
    """The means of the objective's evaluation metrics over the test set, ``batch`` examples a forward pass."""
    objective.eval()
    sums = TermSums()
    for start in range(0, len(data.test_y), batch):
        x, y = data.test_x[start : start + batch], data.test_y[start : start + batch]
        with fast.autocast():
            terms = objective.evaluate(fast.prepare_batch(x), y)
        sums.add(terms, len(y))
    return sums.means()


def _final_evaluations(model: Objective, data: Dataset, trial: TrialConfig) -> dict[str, Any]:
    """The attacks named in ``trial.attacks`` and the objective's own post-training measurements.

    Flat ``robust/*`` metrics go to Tune and MLflow; the rows for ``evaluations.parquet`` travel
    in the same report as one JSON string (Tune keeps it in result.json; MLflow skips strings).
    """
    was_training = model.training
    model.eval()
    own_metrics, own_rows = model.final_evaluations(data)  # first: it may fit what logits() needs (knn_ib's decoder)
    model.train(was_training)
    x, y = evaluation_subset(data.test_x, data.test_y, trial.attacks.eval_subset)
    metrics, rows = run_evaluations(model, x, y, trial.attacks, seed=trial.training.seed)
    metrics, rows = {**metrics, **own_metrics}, rows + own_rows
    return {**metrics, EVALUATIONS_KEY: json.dumps(rows)} if rows else metrics


def _epoch_metrics(model: Objective, data: Dataset, epoch: int, trial: TrialConfig) -> dict[str, float]:
    """The objective's own per-epoch measurements (probes, conditioning), and the information
    plane every ``infoplane_every`` epochs and after the last, in eval mode; its k-NN bias at
    each of those epochs with ``infoplane_bias = "every"``, else after the last only, the one
    point the report reads it at (docs/information_plane.md, Cost)."""
    was_training = model.training
    model.eval()
    metrics = model.epoch_metrics(data, epoch)
    plane, training = trial.infoplane, trial.training
    last = epoch == training.epochs
    if plane.infoplane_every > 0 and (epoch % plane.infoplane_every == 0 or last):
        x, y = evaluation_subset(data.test_x, data.test_y, plane.infoplane_subset)
        bias = last or plane.infoplane_bias == "every"
        metrics.update(info_plane(model, x, y, seed=training.seed,
                                  eval_batch_size=training.eval_batch_size, bias=bias))
    model.train(was_training)
    return metrics


def _inject_fault(config: Mapping[str, Any], epoch: int) -> None:
    """Fault injection for the reliability tests (docs/reliability.md); inert unless the variable is set.

    ``IB_SWEEPS_FAULT='{"raise_at_epoch": 3, "marker_dir": "/tmp/x"}'`` makes every trial raise once
    when it starts that epoch (a marker file per trial config keeps the retry from raising again).
    """
    spec = os.environ.get(FAULT_VARIABLE)
    if not spec:
        return
    fault = json.loads(spec)
    if epoch != fault["raise_at_epoch"]:
        return
    key = hashlib.sha1(json.dumps(dict(config), sort_keys=True).encode()).hexdigest()[:16]
    marker = Path(fault["marker_dir"]) / f"{key}.raised"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise RuntimeError(f"injected fault at epoch {epoch} ({FAULT_VARIABLE})")


# ---- environment ---------------------------------------------------------------------------

def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _trial_device() -> tuple[torch.device, float]:
    """CUDA when Ray gave this trial a GPU, else CPU; also the trial's CPU count."""
    from ray import tune

    resources = tune.get_context().get_trial_resources().required_resources
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
    if gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda"), cpus
    return torch.device("cpu"), cpus


def _tune_report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    tune.report(metrics, checkpoint=checkpoint)
