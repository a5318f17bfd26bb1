"""A sweep run's record, ``<run dir>/sweep.json``: the spec a ``--resume`` must match and the run's state.

The state is ``running`` from before Ray starts, ``interrupted`` after a Ctrl-C, and ``finished``
once the reports are attached; ``--resume`` continues the newest run of the sweep that is not
finished, and refuses it if the spec changed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from search_spaces.spec import SweepSpec

SWEEP_FILE = "sweep.json"
RUNNING, INTERRUPTED, FINISHED = "running", "interrupted", "finished"  # sweep.json's "state"
RUN_TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"  # a run's directory: <sweep>_<start time>


def find_resumable(storage: Path, spec: SweepSpec, search: str) -> str:
    """The newest unfinished run of this sweep (interrupted, or its driver killed); refuse it if the spec changed.

    An interrupted run has parquet files and reports of what had finished; the resume
    overwrites them.
    """
    candidates = sorted(
        (p for p in storage.glob(f"{spec.name}_*") if is_run_of(p.name, spec.name) and not is_finished(p)),
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


def is_run_of(directory: str, sweep: str) -> bool:
    """Whether ``directory`` is named like a run of ``sweep`` (not of a sweep whose name extends it)."""
    try:
        time.strptime(directory[len(sweep) + 1:], RUN_TIME_FORMAT)
    except ValueError:
        return False
    return directory.startswith(sweep + "_")


def is_finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` ended (its sweep.json says so); True if it has no sweep.json.

    A sweep.json without a ``state`` (the older format, kept readable) counts as finished once
    final.parquet exists: runs of that format wrote final.parquet only at their end.
    """
    path = run_dir / SWEEP_FILE
    if not path.is_file():
        return True
    try:
        state = json.loads(path.read_text()).get("state")
    except (OSError, ValueError):
        return True
    return state == FINISHED if state is not None else (run_dir / "final.parquet").exists()


def latest_finished_run(root: Path, sweep: str) -> Path | None:
    """The newest run directory of ``sweep`` under ``root`` (``<sweep>_<start time>``) that finished and has
    final.parquet; None if there is none."""
    if not root.is_dir():
        return None
    runs = [path for path in root.glob(f"{sweep}_*")
            if path.is_dir() and is_run_of(path.name, sweep) and (path / "final.parquet").is_file() and is_finished(path)]
    return max(runs, key=lambda path: path.name, default=None)  # the names sort by start time


def record_state(run_dir: Path, state: str, record: dict[str, Any] | None = None) -> None:
    """Write ``state`` into ``run_dir/sweep.json`` (``record``: the whole file, for a new run), atomically."""
    path = run_dir / SWEEP_FILE
    record = dict(record) if record is not None else json.loads(path.read_text())
    record["state"] = state
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)


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
