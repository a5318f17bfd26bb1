"""Tune results -> pyarrow tables -> parquet: the only input of the reports.

``epochs.parquet`` holds one row per trial x epoch, ``final.parquet`` one row per trial and
``evaluations.parquet`` (only when some trial ran evaluations) one row per trial x evaluation x
strength; each carries the sweep's description as schema metadata (key ``sweep``), so the reports
need nothing else. Columns are documented in docs/results.md. Files are written to a temporary
name and then ``os.replace``d, so a crash never leaves half a table.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

EPOCHS_FILE = "epochs.parquet"
FINAL_FILE = "final.parquet"
EVALUATIONS_FILE = "evaluations.parquet"
EVALUATIONS_KEY = "evaluations"  # trainables.harness.EVALUATIONS_KEY: JSON rows in the final report
EVALUATION_COLUMNS = ("evaluation", "metric", "norm", "epsilon", "steps", "index", "value")
METADATA_KEY = b"sweep"


def trial_rows(results: Iterable[Any], axes: Iterable[str],
               known: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows of the three tables (epochs, final, evaluations) from Tune ``Result`` objects.

    A trial restored from an older checkpoint reports some epochs twice; the last report of
    each epoch is kept, which is the one its final weights descend from. A trial is
    ``TERMINATED`` once it reported its last epoch (``config["epochs"]``), ``ERROR`` if it
    failed, else ``INCOMPLETE``: an interrupted sweep's trial that stopped early or never started.
    A trial that never reported has an empty ``Result.config``; ``known`` (see
    :func:`known_trials`) maps its path to its trial id and config, so its row still names them.
    """
    axes = list(axes)
    known = known or {}
    epoch_rows, final_rows, evaluation_rows = [], [], []
    for result in results:
        known_id, known_config = known.get(str(result.path), (None, {}))
        config = dict(result.config or known_config)
        trial_id = str(result.metrics.get("trial_id") or known_id or Path(result.path).name)
        history = _history(result)
        epochs_done = max((row["epoch"] for row in history), default=0)
        if result.error is not None:
            status = "ERROR"
        elif history and "epochs" in config and epochs_done >= int(config["epochs"]):
            status = "TERMINATED"
        else:
            status = "INCOMPLETE"
        keys = {f"config/{k}": config.get(k) for k in axes + ["seed"]}
        for row in history:
            epoch_rows.append({"trial_id": trial_id, "epoch": row["epoch"], **keys, **_metrics(row)})
        last = _metrics(history[-1]) if history else {}
        if status == "TERMINATED" and isinstance(history[-1].get(EVALUATIONS_KEY), str):
            for row in json.loads(history[-1][EVALUATIONS_KEY]):
                evaluation_rows.append({"trial_id": trial_id, **keys, **{c: row.get(c) for c in EVALUATION_COLUMNS}})
        final_rows.append({
            "trial_id": trial_id,
            "status": status,
            "error": _one_line(result.error) if result.error is not None else None,
            "epochs_completed": epochs_done,
            **keys,  # every swept axis, also where no trial so far has it (a zoo's members lack each other's keys)
            **{f"config/{k}": v for k, v in sorted(config.items())},
            **last,
        })
    return epoch_rows, final_rows, evaluation_rows


def known_trials(result_grid: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Trial path -> (trial id, config) for every trial of a Tune ``ResultGrid``, started or not.

    ``Result`` objects take both from a trial's last report, so a trial that never reported
    (pending when the sweep was interrupted) has neither; Tune's trial objects, which the grid
    keeps privately, still do. Empty if a Ray version no longer keeps them there.
    """
    analysis = getattr(result_grid, "_experiment_analysis", None)
    return {str(trial.path): (str(trial.trial_id), dict(trial.config or {}))
            for trial in getattr(analysis, "trials", None) or []}


def write_results(directory: Path, epoch_rows: list[dict], final_rows: list[dict], sweep: Mapping[str, Any],
                  evaluation_rows: list[dict] | None = None) -> list[Path]:
    """Write the parquet files with the sweep metadata; return their paths.

    ``evaluations.parquet`` is written only when some trial ran evaluations.
    """
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {METADATA_KEY: json.dumps(dict(sweep), sort_keys=True).encode()}
    tables = [(EPOCHS_FILE, epoch_rows, ["trial_id", "epoch"]),
              (FINAL_FILE, final_rows, ["trial_id", "status", "error", "epochs_completed"])]
    if evaluation_rows:
        tables.append((EVALUATIONS_FILE, evaluation_rows, ["trial_id", *EVALUATION_COLUMNS]))
    paths = []
    for name, rows, leading in tables:
        table = _table(rows, leading).replace_schema_metadata(metadata)
        path = directory / name
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def read_sweep_metadata(path: Path) -> dict[str, Any]:
    metadata = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: no '{METADATA_KEY.decode()}' metadata; was it written by orchestrator.results?")
    return json.loads(metadata[METADATA_KEY])


def _history(result: Any) -> list[dict]:
    frame = result.metrics_dataframe
    if frame is None or len(frame) == 0 or "epoch" not in frame.columns:
        return []
    by_epoch: dict[int, dict] = {}
    for row in frame.to_dict("records"):
        epoch = row.get("epoch")
        if epoch is None or (isinstance(epoch, float) and math.isnan(epoch)):
            continue
        by_epoch[int(epoch)] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def _metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """Our metrics (``split/name``) and Tune's wall clock; config and bookkeeping columns dropped."""
    out = {}
    for key, value in row.items():
        if key.startswith("config/") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if "/" in key or key in ("lr", "time_total_s", "time_this_iter_s"):
            out[key] = float(value)
    return out


def _table(rows: list[dict], leading: list[str]) -> pa.Table:
    columns = list(leading)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    ordered = leading + sorted(c for c in columns if c.startswith("config/")) + sorted(
        c for c in columns if c not in leading and not c.startswith("config/"))
    data = {c: [row.get(c) for row in rows] for c in ordered}
    types = {"epsilon": pa.float64(), "value": pa.float64(), "steps": pa.int64(), "index": pa.int64()}
    return pa.table({c: pa.array(v, type=types.get(c)) for c, v in data.items()})


def _one_line(error: BaseException) -> str:
    """The last line of the error that says what went wrong (Ray wraps the trial's exception)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line[:1000]
    return (lines[-1] if lines else type(error).__name__)[:1000]
