"""A trial's checkpoints: what is saved, how it is loaded, and which one a restarted trial uses.

One file (``state.pt``) holds the model, optimisers, scheduler, EMA, every RNG state, the epoch
and the flat trial config (the dict Tune and MLflow record, compared as it is); it is loaded
with ``weights_only=True``. A checkpoint written under another config is refused; a damaged one
is skipped for the previous one Tune kept.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a trial with another config."""


def checkpoint_candidates(latest: "tune.Checkpoint | None") -> "list[tune.Checkpoint]":
    """Tune's latest checkpoint, then the older ones kept beside it (``num_to_keep``), newest first."""
    if latest is None:
        return []
    from pyarrow import fs as pafs
    from ray import tune

    parent = str(Path(latest.path).parent)
    try:
        infos = latest.filesystem.get_file_info(pafs.FileSelector(parent))
    except OSError:
        return [latest]
    older = sorted((i.path for i in infos if i.type == pafs.FileType.Directory
                    and Path(i.path).name.startswith("checkpoint_") and i.path != latest.path), reverse=True)
    return [latest] + [tune.Checkpoint(path, filesystem=latest.filesystem) for path in older
                       if Path(path).name < Path(latest.path).name]


def restore(candidates: list, config: Mapping[str, Any], stateful: Mapping[str, Any],
            generator: torch.Generator) -> int:
    """Resume from the newest checkpoint that loads; return its epoch (0: start from scratch).

    A truncated or corrupt file, or one that ``weights_only=True`` refuses (a pickle that would
    run code), is skipped with a warning naming it, and the previous checkpoint is tried; if none
    loads the trial restarts. A checkpoint written under another config is refused outright.
    """
    for checkpoint in candidates:
        try:
            with checkpoint.as_directory() as directory:
                epoch = load_checkpoint(Path(directory) / CHECKPOINT_FILE, config, stateful, generator)
        except CheckpointMismatchError:
            raise
        except (OSError, EOFError, RuntimeError, KeyError, pickle.UnpicklingError) as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            logger.warning("checkpoint %s is unusable (%s: %s); trying the previous one", checkpoint.path,
                           type(error).__name__, reason)
            continue
        if checkpoint is not candidates[0]:
            logger.warning("resumed from the older checkpoint %s (epoch %d)", checkpoint.path, epoch)
        return epoch
    if candidates:
        logger.warning("no usable checkpoint among %d; the trial restarts from epoch 1", len(candidates))
    return 0


def save_checkpoint(path: Path, config: Mapping[str, Any], stateful: Mapping[str, Any], generator: torch.Generator,
                    epoch: int) -> None:
    """Model, optimiser, scheduler, EMA, RNG states, epoch and config; temp file + os.replace."""
    state = {name: obj.state_dict() for name, obj in stateful.items()}
    state.update(
        epoch=epoch,
        config=dict(config),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state(),
            "python": _python_state(),
            "generator": generator.get_state(),
        },
    )
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, config: Mapping[str, Any], stateful: Mapping[str, Any],
                    generator: torch.Generator) -> int:
    """Restore ``stateful`` in place from ``path``; return the epoch it was written after."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state["config"]
    if saved != dict(config):
        diff = sorted(set(saved) ^ set(config)) + sorted(k for k in set(saved) & set(config) if saved[k] != config[k])
        details = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs trial {config.get(k)!r}" for k in diff)
        raise CheckpointMismatchError(f"refusing to resume from {path}: it was written under another config ({details})")
    for name, obj in stateful.items():
        obj.load_state_dict(state[name])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(("MT19937", rng["numpy"]["keys"].numpy().astype(np.uint32), *rng["numpy"]["rest"]))
    random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
    generator.set_state(rng["generator"])
    return int(state["epoch"])


def _numpy_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": [int(pos), int(has_gauss), float(cached)]}


def _python_state() -> list[Any]:
    version, internal, gauss_next = random.getstate()
    return [version, list(internal), gauss_next]
