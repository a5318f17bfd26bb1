"""One line per finished trial on the console, instead of Tune's per-trial tables."""

from __future__ import annotations

import sys
import time
from typing import Any

from ray import tune


class ProgressCallback(tune.Callback):
    """Prints ``[done/total] trial axes -> metric`` when a trial ends, and a line every minute."""

    def __init__(self, total: int, axes: list[str], metrics: list[str], every_s: float = 60.0):
        self.total = total
        self.axes = axes
        self.metrics = metrics
        self.every_s = every_s
        self._done = 0
        self._last_line = time.monotonic()
        self._start = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_done": 0}

    def set_state(self, state: dict[str, Any]) -> None:
        self._done = int(state.get("done", 0))

    def get_state(self) -> dict[str, Any]:
        return {"done": self._done}

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_line >= self.every_s:
            running = sum(t.status == "RUNNING" for t in trials)
            self._print(f"{self._done}/{self.total} trials done, {running} running "
                        f"({now - self._start:.0f} s elapsed)")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._done += 1
        result = trial.last_result or {}
        shown = "  ".join(f"{m}={result[m]:.4g}" for m in self.metrics if isinstance(result.get(m), (int, float)))
        self._print(f"[{self._done}/{self.total}] {self._label(trial)}  epoch {result.get('epoch', '?')}  {shown}")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._done += 1
        self._print(f"[{self._done}/{self.total}] {self._label(trial)}  FAILED (error in {trial.path})")

    def _label(self, trial) -> str:
        config = trial.config
        return " ".join(f"{a}={config.get(a)}" for a in [*self.axes, "seed"])

    def _print(self, line: str) -> None:
        self._last_line = time.monotonic()
        print(line, file=sys.stdout, flush=True)
