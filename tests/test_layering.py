"""The layering rules, checked in fresh interpreters: the driver never imports torch; a trial never imports MLflow or
the reports.

The driver (``orchestrator``, ``search_spaces``, each objective's config and report modules) runs where no GPU and
perhaps no torch is installed, and ``--list`` / ``--dry-run`` must stay fast; a trial runs on a Ray worker, which
has no business with the tracking store or the plots. Each check imports its modules one at a time in a child
process and stops at the first that brings a forbidden module in. A finder on ``sys.meta_path`` records the chain
of this project's files that imported it, so the failure names the line to fix, not only the entry module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# argv: ROOT, the watched module prefixes (comma-separated), the file the result is written to, then the body's own
WATCH = textwrap.dedent("""
    import importlib, json, pkgutil, sys, traceback

    ROOT, WATCHED, RESULT = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    chains = {}

    def watched(name):
        return next((w for w in WATCHED if name == w or name.startswith(w + ".")), None)

    class Watch:
        # the last lookup before a watched module loads is its import: keep this project's frames of it
        def find_spec(self, name, path=None, target=None):
            root = watched(name)
            if root is not None and root not in chains_done():
                chains[root] = [f"{f.filename[len(ROOT) + 1:]}:{f.lineno}" for f in traceback.extract_stack()
                                if f.filename.startswith(ROOT) and "site-packages" not in f.filename]
            return None

    def chains_done():  # a submodule loads after its package, so the package's name is enough
        return {w for w in WATCHED if w in sys.modules}

    sys.meta_path.insert(0, Watch())
    checked = []

    def step(label, load):
        try:
            load()
        except Exception as error:
            finish({"module": label, "error": f"{type(error).__name__}: {error}"})
        checked.append(label)
        loaded = sorted(chains_done())
        if loaded:
            finish({"module": label, "loaded": loaded, "chain": {w: chains.get(w, []) for w in loaded}})

    def finish(result):
        result["checked"] = len(checked)
        with open(RESULT, "w") as f:
            json.dump(result, f)
        sys.exit(0)

    def module(name):
        return lambda: importlib.import_module(name)
""")

DRIVER = textwrap.dedent("""
    import orchestrator
    step("orchestrator", lambda: None)
    for info in pkgutil.walk_packages(orchestrator.__path__, "orchestrator."):
        step(info.name, module(info.name))
    import search_spaces
    step("search_spaces", lambda: None)
    for info in pkgutil.iter_modules(search_spaces.__path__, "search_spaces."):
        step(info.name, module(info.name))
    step("search_spaces.sweep_names() (every sweeps module, plugins' too)", search_spaces.sweep_names)
    import trainables.objectives as objectives
    for info in pkgutil.iter_modules(objectives.__path__, "trainables.objectives."):
        if info.ispkg:
            step(info.name, module(info.name))
    step("trainables.objectives.slices() (the entry points of other packages)", objectives.slices)
    for piece in objectives.slices().values():
        step(piece.config.__module__, module(piece.config.__module__))
        if piece.report:
            step(piece.report, module(piece.report))
    finish({})
""")

TRIAL = textwrap.dedent("""
    step("trainables.harness", module("trainables.harness"))
    import trainables.evaluation as evaluation
    for info in pkgutil.walk_packages(evaluation.__path__, "trainables.evaluation."):
        step(info.name, module(info.name))
    import trainables.objectives as objectives
    for piece in objectives.slices().values():
        name = piece.model.partition(":")[0]
        step(name, module(name))
    finish({})
""")

# ``python -m orchestrator.sweep ARGS`` as it runs from the command line, watched
COMMAND = textwrap.dedent("""
    import runpy
    sys.argv = ["orchestrator.sweep", *sys.argv[4:]]
    try:
        runpy.run_module("orchestrator.sweep", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    step("python -m orchestrator.sweep " + " ".join(sys.argv[1:3]) + " ...", lambda: None)
    finish({"code": code})
""")


def run_watched(body: str, watched: str, tmp_path: Path, *args: str, timeout: int = 300) -> tuple[dict, str]:
    """(what the child found, its stdout) after running WATCH + ``body`` in a fresh interpreter."""
    result = tmp_path / "result.json"
    done = subprocess.run([sys.executable, "-c", WATCH + body, str(ROOT), watched, str(result), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.exists(), f"the check itself failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(result.read_text()), done.stdout


def explain(found: dict) -> str:
    if "error" in found:
        return f"importing {found['module']} failed: {found['error']}"
    chains = "; ".join(f"{name} through {' -> '.join(chain) or '(directly, or by a library)'}"
                       for name, chain in found["chain"].items())
    return f"importing {found['module']} loaded {', '.join(found['loaded'])}: {chains}"


def test_the_driver_never_imports_torch(tmp_path):
    found, _ = run_watched(DRIVER, "torch", tmp_path)
    assert "module" not in found, explain(found)
    assert found["checked"] > 20  # it did walk the modules


def test_a_trial_never_imports_mlflow_or_the_reports(tmp_path):
    found, _ = run_watched(TRIAL, "mlflow,orchestrator.reports", tmp_path)
    assert "module" not in found, explain(found)
    assert found["checked"] > 10


def test_dry_run_of_a_gpu_sweep_estimates_memory_without_torch(tmp_path):
    """``--dry-run`` of a GPU sweep estimates each trial's device memory in a child process, not on the driver."""
    storage, tracking = tmp_path / "ray_results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    found, out = run_watched(COMMAND, "torch", tmp_path, "dib_cifar", "--dry-run", "--storage", str(storage),
                             "--tracking-uri", tracking, "--data-dir", str(tmp_path / "data"))
    assert "module" not in found, explain(found)
    assert found["code"] == 0, out
    assert "device memory per trial (estimate, largest of 7 configs): " in out, out


def test_a_driver_without_torch_still_dry_runs_and_says_why_in_one_line(tmp_path, monkeypatch):
    """The estimate's child process fails (here: torch cannot be imported); the dry run prints one line for it."""
    from orchestrator.dry_run import memory_summary
    from orchestrator.tuner import LaunchOptions
    from search_spaces import get_sweep

    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))  # the child finds this torch first
    options = LaunchOptions(tmp_path, "run", tmp_path / "data", cpus_per_trial=2, gpus_per_trial=0.25)
    line = memory_summary(get_sweep("vib_mnist"), options)
    assert line == "device memory per trial: not estimated (ModuleNotFoundError: No module named 'torch')"
