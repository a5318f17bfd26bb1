"""The data layer of every report: a sweep's results loaded and checked, summarised over seeds, and put into words.

``RESULTS_DIR/final.parquet`` holds one row per trial, ``RESULTS_DIR/epochs.parquet`` one row per
trial x epoch; both carry the sweep's metadata as JSON under the schema metadata key ``b"sweep"``.
``RESULTS_DIR/evaluations.parquet`` (optional: only sweeps that ran an evaluation suite have it)
holds one row per trial x evaluation x strength (e.g. PGD at each epsilon and step count).
``docs/results.md`` documents every column. Reports read nothing else, so they can be rebuilt from
the parquet files alone.

Only finished (TERMINATED) trials are averaged. A *configuration* is one combination of values of
the swept axes other than beta (``"entropy_model=factorized"``, or ``"all trials"`` when beta is
the only axis): one line, panel or table each. A summary over seeds gives per cell the mean, the
sample standard deviation (ddof=1) and the count of finished trials, and :func:`format_mean_std`
is the one way a report writes such a cell, so every table reads ``"0.9123 ± 0.0041 (2)"`` alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.reports.document import Table

METADATA_KEY = b"sweep"
FINAL_FILE = "final.parquet"
EPOCHS_FILE = "epochs.parquet"
EVALUATIONS_FILE = "evaluations.parquet"
FINISHED = "TERMINATED"
ERROR = "ERROR"
CONFIG_PREFIX = "config/"

# Columns that are neither config nor metrics; every other column is a metric (float64).
_FINAL_COLUMNS = ("trial_id", "status", "error", "epochs_completed")
_EPOCHS_COLUMNS = ("trial_id", "epoch")
# evaluations.parquet: required columns, and optional ones filled with nulls ("" for norm) when absent.
_EVALUATIONS_COLUMNS = ("trial_id", "evaluation", "metric", "value")
_EVALUATIONS_OPTIONAL = {"norm": "str", "epsilon": "float64", "steps": "Int64", "index": "Int64"}
_REQUIRED_METADATA = ("name", "axes", "reports")
_OPTIONAL_METADATA = ("description", "paper", "objective", "dataset", "metric", "mode", "run_name")


def config_column(key: str) -> str:
    """The column that holds config key ``key``: ``config/<key>``."""
    return CONFIG_PREFIX + key


@dataclass(frozen=True)
class SweepInfo:
    """The sweep's metadata, as written under ``b"sweep"`` in both parquet files."""

    name: str
    axes: tuple[str, ...]  # swept config keys; never "seed" (seeds are repetitions)
    reports: tuple[str, ...]  # report names, keys of orchestrator.reports.REPORTS
    description: str = ""
    paper: str = ""
    objective: str = ""
    dataset: str = ""
    metric: str = ""  # the metric Tune optimised, e.g. "test/acc"
    mode: str = ""  # "max" or "min"
    run_name: str = ""

    @classmethod
    def from_json(cls, text: bytes | str, source: Path) -> SweepInfo:
        """Parse the metadata JSON; ``ValueError`` names ``source`` and the bad field."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: sweep metadata is not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: sweep metadata must be a JSON object, got {type(raw).__name__}")
        missing = [key for key in _REQUIRED_METADATA if key not in raw]
        if missing:
            raise ValueError(f"{source}: sweep metadata lacks {', '.join(missing)}")
        for key in ("axes", "reports"):
            value = raw[key]
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{source}: sweep metadata {key!r} must be a list of strings, got {value!r}")
        if "seed" in raw["axes"]:
            raise ValueError(f"{source}: sweep metadata 'axes' must not include 'seed' (seeds are repetitions)")
        if not isinstance(raw["name"], str) or not raw["name"]:
            raise ValueError(f"{source}: sweep metadata 'name' must be a non-empty string, got {raw['name']!r}")
        optional = {key: raw[key] for key in _OPTIONAL_METADATA if raw.get(key) is not None}
        for key, value in optional.items():
            if not isinstance(value, str):
                raise ValueError(f"{source}: sweep metadata {key!r} must be a string or null, got {value!r}")
        # Other keys (e.g. "epochs") are allowed and ignored.
        return cls(name=raw["name"], axes=tuple(raw["axes"]), reports=tuple(raw["reports"]), **optional)


@dataclass
class SweepResults:
    """The tables of one results directory plus the sweep's metadata."""

    directory: Path
    info: SweepInfo
    final: pd.DataFrame  # one row per trial
    epochs: pd.DataFrame  # one row per trial x epoch
    # One row per trial x evaluation x strength; None when the sweep wrote no evaluations.parquet.
    evaluations: pd.DataFrame | None = None

    @property
    def finished(self) -> pd.DataFrame:
        """Trials that ran to their last epoch (status TERMINATED): the only ones averaged."""
        return self.final[self.final["status"] == FINISHED]

    @property
    def finished_evaluations(self) -> pd.DataFrame:
        """The rows of ``evaluations`` that belong to finished trials (no rows when it is None)."""
        if self.evaluations is None:
            return _empty_evaluations(self.info.axes)
        finished_ids = set(self.finished["trial_id"])
        return self.evaluations[self.evaluations["trial_id"].isin(finished_ids)]

    @property
    def errored(self) -> pd.DataFrame:
        """Trials that ended with an error (status ERROR)."""
        return self.final[self.final["status"] == ERROR]

    def status_counts(self) -> dict[str, int]:
        """Number of trials per status, e.g. ``{"ERROR": 1, "TERMINATED": 15}``."""
        return {str(status): int(count) for status, count in self.final["status"].value_counts().sort_index().items()}


def load_results(results_dir: str | Path) -> SweepResults:
    """Load ``final.parquet``, ``epochs.parquet`` and ``evaluations.parquet`` from ``results_dir``.

    Required columns: ``trial_id``, ``status``, ``error``, ``epochs_completed`` and
    ``config/<axis>`` for every swept axis in ``final.parquet``; ``trial_id``, ``epoch`` and
    ``config/<axis>`` in ``epochs.parquet``. A table with no rows may lack the ``config/`` columns.
    ``evaluations.parquet`` is optional (``SweepResults.evaluations`` is None without it); when
    present it needs ``trial_id``, ``evaluation``, ``metric``, ``value`` and ``config/<axis>``, and
    its optional ``norm``, ``epsilon``, ``steps`` and ``index`` columns are added as nulls when absent.

    Raises:
        FileNotFoundError: the directory or one of the two required files does not exist.
        ValueError: a file is not readable parquet, lacks the ``b"sweep"`` metadata or a required
            column, carries metadata that differs from ``final.parquet``'s, or holds a non-numeric
            metric (or ``value``, ``epsilon``, ``steps``, ``index``) column.
    """
    directory = Path(results_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such results directory (expected {FINAL_FILE} and {EPOCHS_FILE} in it)")
    final_table = _read_table(directory / FINAL_FILE)
    epochs_table = _read_table(directory / EPOCHS_FILE)
    info = _read_info(final_table, directory / FINAL_FILE)
    epochs_metadata = (epochs_table.schema.metadata or {}).get(METADATA_KEY)
    if epochs_metadata is not None and SweepInfo.from_json(epochs_metadata, directory / EPOCHS_FILE) != info:
        raise ValueError(f"{directory}: {FINAL_FILE} and {EPOCHS_FILE} carry different sweep metadata (two different runs?)")
    axis_columns = tuple(config_column(axis) for axis in info.axes)
    final = _to_frame(final_table, directory / FINAL_FILE, _FINAL_COLUMNS + axis_columns)
    epochs = _to_frame(epochs_table, directory / EPOCHS_FILE, _EPOCHS_COLUMNS + axis_columns)
    evaluations = None
    if (directory / EVALUATIONS_FILE).exists():
        evaluations_table = _read_table(directory / EVALUATIONS_FILE)
        evaluations_metadata = (evaluations_table.schema.metadata or {}).get(METADATA_KEY)
        if evaluations_metadata is not None and SweepInfo.from_json(evaluations_metadata, directory / EVALUATIONS_FILE) != info:
            raise ValueError(f"{directory}: {FINAL_FILE} and {EVALUATIONS_FILE} carry different sweep metadata (two different runs?)")
        evaluations = _to_evaluations_frame(evaluations_table, directory / EVALUATIONS_FILE, _EVALUATIONS_COLUMNS + axis_columns)
    return SweepResults(directory=directory, info=info, final=final, epochs=epochs, evaluations=evaluations)


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a results directory holds {FINAL_FILE} and {EPOCHS_FILE})")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable parquet file ({exc})") from None


def _read_info(table: pa.Table, path: Path) -> SweepInfo:
    metadata = (table.schema.metadata or {}).get(METADATA_KEY)
    if metadata is None:
        raise ValueError(f"{path}: schema metadata lacks the key {METADATA_KEY!r} (the sweep's JSON description)")
    return SweepInfo.from_json(metadata, path)


def _with_required(table: pa.Table, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """The table as a frame; ValueError if it has rows but lacks a required column.

    A table with no rows (no trial reported anything) may be written without its config columns:
    they are added empty.
    """
    missing = [column for column in required if column not in table.column_names]
    if missing and table.num_rows > 0:
        raise ValueError(f"{path}: lacks the column(s) {', '.join(missing)}")
    frame = table.to_pandas()
    for column in missing:
        frame[column] = pd.Series(dtype="object")
    return frame


def _to_frame(table: pa.Table, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    frame = _with_required(table, path, required)
    for column in frame.columns:
        if column in _FINAL_COLUMNS or column in _EPOCHS_COLUMNS or column.startswith(CONFIG_PREFIX):
            continue
        # A metric that is null in every row arrives as an object column of None.
        try:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
        except (TypeError, ValueError):
            raise ValueError(f"{path}: metric column {column!r} is not numeric (dtype {frame[column].dtype})") from None
    return frame


def _to_evaluations_frame(table: pa.Table, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    frame = _with_required(table, path, required)
    for column, dtype in _EVALUATIONS_OPTIONAL.items():
        if column not in frame.columns:
            frame[column] = pd.Series([""] * len(frame) if dtype == "str" else [None] * len(frame), index=frame.index, dtype=dtype)
    frame["norm"] = frame["norm"].fillna("").astype("str")
    for column, dtype in (("value", "float64"), ("epsilon", "float64"), ("steps", "Int64"), ("index", "Int64")):
        try:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(dtype)
        except (TypeError, ValueError):
            expected = "numbers" if dtype == "float64" else "integers"
            raise ValueError(f"{path}: column {column!r} must hold {expected} (dtype {frame[column].dtype})") from None
    return frame


def _empty_evaluations(axes: tuple[str, ...]) -> pd.DataFrame:
    columns = {column: pd.Series(dtype="str") for column in ("trial_id", "evaluation", "metric", "norm")}
    columns.update({config_column(axis): pd.Series(dtype="object") for axis in axes})
    columns.update({"epsilon": pd.Series(dtype="float64"), "steps": pd.Series(dtype="Int64"), "index": pd.Series(dtype="Int64")})
    columns["value"] = pd.Series(dtype="float64")
    return pd.DataFrame(columns)


# ---- configurations --------------------------------------------------------------------------

def other_axes(results: SweepResults) -> list[str]:
    """The swept axes other than beta, in the sweep's order: one line, panel or table per combination."""
    return [axis for axis in results.info.axes if axis != "beta"]


def sweep_configurations(final: pd.DataFrame, others: list[str]) -> list[tuple[str, ...]]:
    """Every configuration of the other swept axes present in the sweep (finished or not)."""
    if not others:
        return [()]
    unique = final[[config_column(axis) for axis in others]].drop_duplicates()
    unique = unique.sort_values(list(unique.columns), na_position="last")
    return [tuple(format_value(value) for value in row) for row in unique.itertuples(index=False)]


def configuration_label(others: list[str], configuration: tuple[str, ...]) -> str:
    """``"latent_dim=2, temperature=0.5"`` for a configuration of ``others``; ``"all trials"`` for none."""
    return ", ".join(f"{axis}={value}" for axis, value in zip(others, configuration)) or "all trials"


def configuration_labels(results: SweepResults) -> list[str]:
    """The label of every configuration of the other axes in the sweep, finished or not, sorted."""
    others = other_axes(results)
    return [configuration_label(others, key) for key in sweep_configurations(results.final, others)]


def sweep_betas(results: SweepResults) -> list[float]:
    """Every beta of the sweep, ascending; ``[nan]`` when the sweep does not sweep beta."""
    if "beta" not in results.info.axes:
        return [math.nan]
    return sorted(float(beta) for beta in results.final[config_column("beta")].dropna().unique())


def with_configuration(results: SweepResults, rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``rows`` with ``configuration`` (its label) and ``beta`` (float, NaN without a beta axis)."""
    rows = rows.copy()
    others = other_axes(results)
    rows["configuration"] = [
        configuration_label(others, tuple(format_value(value) for value in values))
        for values in rows[[config_column(axis) for axis in others]].itertuples(index=False, name=None)
    ] if others else "all trials"
    if "beta" in results.info.axes:
        rows["beta"] = pd.to_numeric(rows[config_column("beta")]).astype("float64")
    else:
        rows["beta"] = math.nan
    return rows


# ---- summaries over seeds ----------------------------------------------------------------------

def summarize_over_seeds(frame: pd.DataFrame, metric: str, axes: list[str]) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof=1) and count of ``metric`` per configuration.

    One row per distinct value combination of ``config/<axis>`` for ``axes`` (the seeds of a
    configuration are its repetitions); columns ``config/<axis>...``, ``mean``, ``std``, ``n``.
    ``n`` counts non-null values; ``std`` is NaN where ``n < 2``.
    """
    columns = [config_column(axis) for axis in axes]
    if not columns:
        values = frame[metric]
        return pd.DataFrame({"mean": [values.mean()], "std": [values.std()], "n": [int(values.count())]})
    grouped = frame.groupby(columns, dropna=False, sort=True)[metric]
    summary = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    summary["n"] = summary["n"].astype(int)
    return summary


def seed_cells(results: SweepResults, metric: str, keys: list[str]) -> dict[tuple[str, ...], tuple[float, float, int]]:
    """``{(formatted values of keys): (mean, std, n)}`` of the finished trials' final ``metric``
    (:func:`summarize_over_seeds`); empty when ``final.parquet`` has no such column."""
    if metric not in results.final.columns:
        return {}
    summary = summarize_over_seeds(results.finished, metric, keys)
    return {tuple(format_value(row[config_column(k)]) for k in keys): (row["mean"], row["std"], int(row["n"]))
            for _, row in summary.iterrows()}


def evaluation_rows(results: SweepResults, evaluation: str, metric: str | None = None) -> pd.DataFrame:
    """Finished trials' rows of ``evaluation`` (and ``metric``), with ``configuration`` and ``beta``."""
    rows = results.finished_evaluations
    rows = rows[rows["evaluation"] == evaluation]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    return with_configuration(results, rows)


def summarize_evaluation(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, std (ddof=1) and n over trials of ``value`` per configuration, beta and ``keys``.

    A trial contributes one value per cell (the mean of its rows there, should a resumed trial have
    repeated one), so the statistics are over trials, i.e. seeds. Columns: ``configuration``,
    ``beta``, ``keys...``, ``mean``, ``std``, ``n`` and ``trials`` (the sorted ids of the trials in
    the cell). Rows whose ``value`` is null are not counted.
    """
    columns = ["configuration", "beta", *keys]
    rows = rows.dropna(subset=["value"])
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "mean", "std", "n", "trials"])
    per_trial = rows.groupby(["trial_id", *columns], dropna=False, sort=False)["value"].mean().reset_index()
    grouped = per_trial.groupby(columns, dropna=False, sort=True)
    summary = grouped["value"].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    summary["trials"] = grouped["trial_id"].agg(lambda ids: tuple(sorted(ids)))
    summary = summary.reset_index()
    summary["n"] = summary["n"].astype(int)
    return summary


# ---- cells and labels --------------------------------------------------------------------------

# An epsilon within this of k/255 is shown as "k/255": attacks on 8-bit images use such budgets.
_PIXEL_LEVEL_TOLERANCE = 1e-6
# Objectives whose beta = 0 is plain cross-entropy training (the paper's "CE" column); for the
# others (knn_ib's beta'' = 0 keeps H[Z|Y], simclr_dib's is SimCLR) beta = 0 is just beta = 0.
CROSS_ENTROPY_AT_ZERO = ("dib", "vib")


def format_mean_std(mean: float, std: float, n: int, *, scale: float = 1.0, decimals: int | None = None) -> str:
    """A table cell ``"mean ± std (n)"``: ``"0.9123 ± 0.0041 (2)"``, ``"0.9123 (1)"`` with one value, ``"–"`` with none.

    ``scale`` multiplies mean and std (100 for a fraction shown in percent). Without ``decimals`` the
    mean has 4 significant digits and the std 2; with it both have that many decimals
    (``decimals=1``: ``"44.3 ± 1.2 (2)"``), as a paper's table of percentages does.
    """
    if n == 0 or pd.isna(mean):
        return "–"
    mean_format, std_format = (".4g", ".2g") if decimals is None else (f".{decimals}f", f".{decimals}f")
    if pd.isna(std):
        return f"{mean * scale:{mean_format}} ({n})"
    return f"{mean * scale:{mean_format}} ± {std * scale:{std_format}} ({n})"


def percent_scale(values: pd.Series) -> float:
    """100 for accuracies stored as fractions in [0, 1]; 1 when some value is above 1 (already %)."""
    return 1.0 if bool((values.dropna() > 1).any()) else 100.0


def format_value(value: object) -> str:
    """A config value as it appears in labels and tables (``1e-03`` as ``0.001``)."""
    if value is None or pd.isna(value):
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_epsilon(epsilon: float, norm: str = "linf") -> str:
    """``"8/255"`` for an L-inf epsilon within 1e-6 of k/255 (1 <= k < 255), else the decimal (``"0.5"``).

    Pixel levels mean something for an L-inf radius only: an L2 radius of 1.0 is ``"1"``. A short decimal stays one
    (MNIST's 0.2 is 51/255 too, but is written as 0.2 in every paper that uses it).
    """
    if epsilon is None or pd.isna(epsilon):
        return "–"
    decimal = f"{float(epsilon):g}"
    level = round(float(epsilon) * 255)
    if (norm == "linf" and len(decimal) > 4 and 1 <= level < 255
            and abs(float(epsilon) - level / 255) <= _PIXEL_LEVEL_TOLERANCE):
        return f"{level}/255"
    return decimal


def beta_label(beta: float, objective: str = "") -> str:
    """A beta as a column or legend label: ``"CE (beta=0)"`` for an objective whose beta = 0 is
    plain cross-entropy, else ``"beta=0"``; ``"beta=0.5"`` otherwise."""
    if pd.isna(beta):
        return "all trials"
    if beta == 0 and objective in CROSS_ENTROPY_AT_ZERO:
        return "CE (beta=0)"
    return f"beta={beta:g}"


def error_summary(error: object, limit: int = 300) -> str:
    """The last non-empty line of a trial's error (the exception and its message), shortened."""
    if error is None or pd.isna(error):
        return "(no error message recorded)"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[-1] if lines else "(empty error message)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---- what every section says ---------------------------------------------------------------------

def counts_sentence(results: SweepResults) -> str:
    """"Means use the N finished (TERMINATED) trials only; excluded: ..." for a section's text."""
    counts = results.status_counts()
    finished = counts.get(FINISHED, 0)
    excluded = ", ".join(f"{count} {status}" for status, count in counts.items() if status != FINISHED)
    text = f"Means use the {finished} finished (TERMINATED) trials only"
    return text + (f"; excluded: {excluded}." if excluded else ".")


def error_table(results: SweepResults) -> Table | None:
    """The ERROR trials with their swept config, seed, epochs completed and error; None if none."""
    errored = results.errored
    if errored.empty:
        return None
    keys = list(results.info.axes) + (["seed"] if config_column("seed") in errored.columns else [])
    rows = [
        [str(row["trial_id"]), *(format_value(row[config_column(key)]) for key in keys), format_value(row["epochs_completed"]), error_summary(row["error"])]
        for _, row in errored.sort_values("trial_id").iterrows()
    ]
    caption = f"ERROR trials ({len(rows)}), excluded from every mean above"
    return Table(caption, ["trial_id", *keys, "epochs_completed", "error (last line)"], rows)


def absent_sentence(results: SweepResults, what: str) -> str | None:
    """Why there is no ``what`` when the sweep wrote no ``evaluations.parquet``; None when it did."""
    if results.evaluations is not None:
        return None
    return f"The sweep wrote no `{EVALUATIONS_FILE}` (it ran no evaluation suite), so there is no {what}."
