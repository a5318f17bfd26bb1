"""Shared fixtures: one local Ray for the whole run, and a scratch place per sweep."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster for tests only


@pytest.fixture(scope="session")
def ray_session():
    """Start local Ray once per test run (about 10 s); the CLI reuses it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_thread_per_module():
    """torch on one thread for a module of tiny models, restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Workspace:
    root: Path

    @property
    def storage(self) -> Path:
        return self.root / "ray_results"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def args(self, *extra: str) -> list[str]:
        return [*extra, "--storage", str(self.storage), "--tracking-uri", self.tracking_uri,
                "--data-dir", str(self.root / "data")]

    def run_dirs(self, sweep: str) -> list[Path]:
        return sorted(self.storage.glob(f"{sweep}_*"))


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)
