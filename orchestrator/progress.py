"""The sweep's progress on the console: one line per finished trial, and a live view on a terminal.

The lines (``[3/7] beta=0.5 seed=0  epoch 30  test/acc=0.9733  test/rate_bits=61.2``) are the
permanent record, the same whether stdout is a terminal, a log file or CI; scripts and tests read
their ``[k/N]`` prefix. When stdout is a terminal, a view of the running trials sits below them and
is redrawn in place at most once a second (:func:`render_view`, a pure function of a
:class:`SweepView`): each running trial's swept values, epoch, headline metric and time, and an
estimate of the time the whole sweep has left. Elsewhere a line every ``every_s`` seconds says how
far the sweep is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator import console


@dataclass
class RunningTrial:
    """What the live view shows of one running trial."""

    label: str  # its swept values, e.g. ``beta=0.5 seed=0``
    epochs: int | None  # the epochs it trains for, when its config says
    started: float  # time.monotonic() when Tune started it
    epoch: int = 0  # the last epoch it reported
    value: float | None = None  # the headline metric at that epoch


@dataclass
class SweepView:
    """The state the live view is drawn from; ``durations`` are the wall seconds of trials that
    finished while this process watched (the resumed part of a sweep, after a restart)."""

    total: int
    metric: str
    started: float
    done: int = 0
    failed: int = 0
    running: dict[str, RunningTrial] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)


def estimate_remaining(view: SweepView, now: float) -> float | None:
    """Seconds until the sweep ends, or None before there is anything to extrapolate from.

    A running trial has left what its epochs so far say its remaining epochs take, or, if longer,
    what is left of the average finished trial (which counts the evaluations after the last
    epoch). A waiting trial takes as long as the finished ones did on average, or, before any
    finished, as long as the running ones' epochs say. The work is spread over the trials running now.
    """
    waiting = max(0, view.total - view.done - len(view.running))
    slots = max(1, len(view.running))
    rates = {key: (now - t.started) / t.epoch for key, t in view.running.items() if t.epoch and t.epochs}
    mean = sum(view.durations) / len(view.durations) if view.durations else None
    if mean is None and not rates:
        return None
    left = 0.0
    for key, t in view.running.items():
        by_epochs = max(0, (t.epochs or 0) - t.epoch) * rates[key] if key in rates else 0.0
        left += max(by_epochs, mean - (now - t.started) if mean is not None else 0.0)
    if mean is None:
        per_epoch = sum(rates.values()) / len(rates)
        mean = max((t.epochs or 0) for t in view.running.values()) * per_epoch
    return (left + waiting * mean) / slots


def render_view(view: SweepView, now: float) -> list[str]:
    """The live view's lines: a summary line, then one line per running trial, in start order."""
    summary = f"{view.done}/{view.total} trials done"
    if view.failed:
        summary += f" ({view.failed} failed)"
    summary += f", {len(view.running)} running, {format_duration(now - view.started)} elapsed"
    remaining = estimate_remaining(view, now)
    if remaining is not None:
        summary += f", about {format_duration(remaining)} left"
    lines = [summary]
    trials = sorted(view.running.values(), key=lambda t: t.started)
    width = max((len(t.label) for t in trials), default=0)
    digits = max((len(str(t.epochs or t.epoch)) for t in trials), default=1)
    for t in trials:
        epoch = f"epoch {t.epoch:>{digits}}" + (f"/{t.epochs}" if t.epochs else "")
        value = f"{t.value:.4g}" if t.value is not None else "-"
        lines.append(f"  {t.label:<{width}}  {epoch}  {view.metric}={value:<8}  {format_duration(now - t.started)}")
    return lines


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h03m``: short enough for a status line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressCallback(tune.Callback):
    """Prints ``[done/total] trial axes -> metrics`` when a trial ends, and keeps the live view.

    Args:
        total: trials in the sweep.
        axes: the swept config keys, in the sweep's order (the trial label; ``seed`` is added).
        metrics: shown in each finished trial's line; the first is the live view's headline.
        every_s: without a terminal, a progress line this often.
        redraw_s: on a terminal, the live view is redrawn at most this often.
    """

    def __init__(self, total: int, axes: list[str], metrics: list[str], every_s: float = 60.0,
                 redraw_s: float = 1.0):
        self.total = total
        self.axes = axes
        self.metrics = metrics
        self.every_s = every_s
        self.redraw_s = redraw_s
        self._done = 0
        self._failed = 0
        self._view: SweepView | None = None
        self._region: console.LiveRegion | None = None
        self._last_line = self._last_draw = time.monotonic()

    # Tune pickles callbacks with the Tuner; the counts travel in get_state, the screen stays here.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_done": 0, "_failed": 0, "_view": None, "_region": None}

    def set_state(self, state: dict[str, Any]) -> None:
        self._done = int(state.get("done", 0))
        self._failed = int(state.get("failed", 0))

    def get_state(self) -> dict[str, Any]:
        return {"done": self._done, "failed": self._failed}

    # ---- Tune hooks --------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        console.reroute()  # Tune has imported its searcher and loggers by now
        now = time.monotonic()
        self._view = SweepView(self.total, self.metrics[0] if self.metrics else "", now,
                               done=self._done, failed=self._failed)
        self._region = console.open_region()
        self._last_line = self._last_draw = now

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        view = self._ensure_view()
        if trial.trial_id not in view.running:
            epochs = trial.config.get("epochs")
            view.running[trial.trial_id] = RunningTrial(self._label(trial), epochs if isinstance(epochs, int) else None,
                                                        time.monotonic())
        self._draw(force=True)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        view = self._ensure_view()
        running = view.running.get(trial.trial_id)
        if running is None:  # started before this callback watched (a restore)
            self.on_trial_start(iteration=iteration, trials=trials, trial=trial)  # as Tune calls it
            running = view.running[trial.trial_id]
        running.epoch = int(result.get("epoch", result.get("training_iteration", running.epoch)))
        value = result.get(view.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            running.value = float(value)
        now = time.monotonic()
        if self._region is None and now - self._last_line >= self.every_s:
            remaining = estimate_remaining(view, now)
            left = f", about {format_duration(remaining)} left" if remaining is not None else ""
            self._print(f"{self._done}/{self.total} trials done, {len(view.running)} running "
                        f"({now - view.started:.0f} s elapsed{left})")
        self._draw()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._done += 1
        self._finish(trial)
        result = trial.last_result or {}
        shown = "  ".join(f"{m}={result[m]:.4g}" for m in self.metrics if isinstance(result.get(m), (int, float)))
        self._print(f"[{self._done}/{self.total}] {self._label(trial)}  epoch {result.get('epoch', '?')}  {shown}")
        self._draw(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._done += 1
        self._failed += 1
        self._finish(trial, failed=True)
        self._print(f"[{self._done}/{self.total}] {self._label(trial)}  FAILED: {_error_summary(trial)}  "
                    f"(error.txt in {trial.path})")
        self._draw(force=True)

    def on_trial_recover(self, iteration: int, trials: list, trial, **info: Any) -> None:
        epoch = (trial.last_result or {}).get("epoch")
        when = f"after epoch {epoch}" if epoch is not None else "before its first epoch ended"
        tries = getattr(trial, "max_failures", None)
        failures = getattr(trial, "num_failures", None)
        retry = f"retry {failures} of {tries}" if isinstance(tries, int) and tries > 0 and failures else "retried"
        self._print(f"      {self._label(trial)}  failed {when}: {_error_summary(trial)}  "
                    f"({retry}, from its last checkpoint if it has one)")
        self._draw(force=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._draw()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._region is not None:
            self._region.close()
        console.close_region()
        self._region = None

    # ---- drawing -----------------------------------------------------------------------------
    def _ensure_view(self) -> SweepView:
        if self._view is None:  # hooks called without setup (tests, benchmarks)
            self._view = SweepView(self.total, self.metrics[0] if self.metrics else "", time.monotonic(),
                                   done=self._done, failed=self._failed)
        return self._view

    def _finish(self, trial, failed: bool = False) -> None:
        view = self._ensure_view()
        view.done, view.failed = self._done, self._failed
        running = view.running.pop(trial.trial_id, None)
        if running is not None and not failed:
            view.durations.append(time.monotonic() - running.started)

    def _draw(self, force: bool = False) -> None:
        if self._region is None or self._view is None:
            return
        now = time.monotonic()
        if force or now - self._last_draw >= self.redraw_s:
            self._last_draw = now
            self._region.show(render_view(self._view, now))

    def _label(self, trial) -> str:
        config = trial.config
        return " ".join(f"{a}={config.get(a)}" for a in [*self.axes, "seed"])

    def _print(self, line: str) -> None:
        self._last_line = time.monotonic()
        console.say(line)


def _error_summary(trial) -> str:
    """The last line of the trial's error (``FloatingPointError: non-finite loss ...``), cut short."""
    text = ""
    for path in (getattr(trial, "error_file", None), getattr(trial, "pickled_error_file", None)):
        if path and str(path).endswith(".txt") and Path(path).is_file():
            text = Path(path).read_text(errors="replace")
            break
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "see the trial's error.txt"
