"""An objective from another package: tests/plugin_example installed beside ib-sweeps, listed, and swept end to end.

The example distribution ``ib-sweeps-toy`` registers the objective ``toy_linear`` and its sweep ``toy_digits``
through the entry-point group ``ib_sweeps.objectives``; nothing in this project names it. pip installs it offline
into a temporary directory, and the commands run in child processes with that directory on ``PYTHONPATH``: the
registry reads the entry points once per process, and Ray's local workers inherit the driver's environment.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import mlflow_runs, read_tables

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).resolve().parent / "plugin_example"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that sees ``ib-sweeps-toy`` installed."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: the example plugin cannot be built offline "
                    "(pip install -e '.[test]' installs it)")
    where = tmp_path_factory.mktemp("plugin")
    source, site = where / "source", where / "site"
    shutil.copytree(EXAMPLE, source)  # setuptools writes build/ and *.egg-info next to the sources
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
                           "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(site),
                           str(source)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(site) + (os.pathsep + path if path else "")}


def sweep_cli(env: dict[str, str], *args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_the_plugin_sweep_is_listed_beside_ours_with_its_distribution(plugin_env):
    done = sweep_cli(plugin_env, "--list", timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert " toy_linear (ib-sweeps-toy) " in rows["toy_digits"]
    assert rows["toy_digits"].split()[1] == "2"  # two betas, one seed
    assert " vib " in rows["vib_digits"] and "(ib-sweeps)" not in done.stdout  # ours carry no suffix


@pytest.mark.slow
def test_the_plugin_sweep_runs_through_ray_and_mlflow(plugin_env, workspace):
    done = sweep_cli(plugin_env, *workspace.args("toy_digits", "--smoke"), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run_dir,) = workspace.run_dirs("toy_digits")

    epochs, final = read_tables(run_dir)
    assert len(final) == 2 and set(final["status"]) == {"TERMINATED"}
    assert sorted(final["config/beta"]) == [0.01, 1.0] and set(final["config/objective"]) == {"toy_linear"}
    assert len(epochs) == 2 * 2 and sorted(set(epochs["epoch"])) == [1, 2]
    rate = dict(zip(final["config/beta"], final["test/rate_bits"]))
    assert rate[1.0] < rate[0.01]  # the config's beta reached the plugin's model

    parents, children = mlflow_runs(workspace.tracking_uri, "toy_digits")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.params["objective"] == "toy_linear"
        assert "test/acc" in child.data.metrics and "test/rate_bits" in child.data.metrics
    assert (run_dir / "reports" / "report.md").stat().st_size > 0
