"""Ctrl-C during a sweep: the first stops it cleanly and resumably, the second at once.

What a clean stop is depends on where the driver is when Ctrl-C (SIGINT) comes, so the driver
tells :class:`CtrlC` which phase it is in:

- ``starting`` (``ray.init`` and building the Tuner) and ``writing`` (the parquet files): the
  request is recorded, and the driver stops at its next check, where nothing is half-done.
- ``fitting`` (``Tuner.fit``): the request is passed on to Ray Tune as SIGUSR1, which Tune
  handles as its own graceful stop (save the experiment state, stop the trials, return). Tune's
  own SIGINT handler is switched off (``TUNE_DISABLE_SIGINT_HANDLER``) so that SIGINT stays
  here: Tune's handler would leave the driver no way to tell an interrupted fit from a finished
  one, and it would swallow a Ctrl-C that came after the fit.
- ``reports``: the reports are only a view of parquet files already written, so they are
  abandoned at once (``KeyboardInterrupt``).
- ``closing`` (marking MLflow runs, stopping Ray): nothing to stop; a second Ctrl-C exits.

A second Ctrl-C raises ``KeyboardInterrupt`` wherever the driver is (in ``closing``: exits with
:data:`EXIT_INTERRUPTED`); Tune's experiment state and checkpoints are saved as the sweep goes,
so ``--resume`` continues from them, as after a killed driver.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C
PHASES = ("starting", "fitting", "writing", "reports", "closing")
TUNE_SIGINT_VARIABLE = "TUNE_DISABLE_SIGINT_HANDLER"


class CtrlC:
    """SIGINT handling for one run of a sweep, as a context manager (main thread only).

    ``requested`` says whether Ctrl-C was pressed; :meth:`enter` names the phase the driver is
    in. Leaving the context restores the handlers and the environment it found.
    """

    def __init__(self) -> None:
        self.presses = 0
        self.phase = "starting"
        self._saved: dict[Any, Any] = {}
        self._saved_variable: str | None = None
        self._installed = False
        self._forwarded = False

    @property
    def requested(self) -> bool:
        return self.presses > 0

    def enter(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r}: expected one of {', '.join(PHASES)}")
        self.phase = phase

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only; a caller there handles them
        self._saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGUSR1)}
        self._saved_variable = os.environ.get(TUNE_SIGINT_VARIABLE)
        os.environ[TUNE_SIGINT_VARIABLE] = "1"
        signal.signal(signal.SIGINT, self._on_sigint)
        # Until Tune installs its own SIGUSR1 handler, a forwarded request must not kill the driver
        # (SIGUSR1's default action) nor reach a handler a previous fit in this process left behind.
        signal.signal(signal.SIGUSR1, self._before_tune)
        self._installed = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._installed:
            return
        for sig, handler in self._saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if self._saved_variable is None:
            os.environ.pop(TUNE_SIGINT_VARIABLE, None)
        else:
            os.environ[TUNE_SIGINT_VARIABLE] = self._saved_variable
        self._installed = False
        self.phase = "closing"

    # ---- the handlers ------------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.presses += 1
        if self.presses > 1:
            if self.phase == "closing":
                _say("\nCtrl-C again: exiting now")
                sys.stdout.flush()
                os._exit(EXIT_INTERRUPTED)
            _say("\nCtrl-C again: stopping now")
            raise KeyboardInterrupt
        if self.phase == "reports":
            _say("\nCtrl-C: leaving the reports unfinished")
            raise KeyboardInterrupt
        if self.phase == "closing":
            _say("\nCtrl-C: the sweep is already stopping (Ctrl-C again to exit at once)")
            return
        _say("\nCtrl-C: stopping the sweep and saving what has finished (Ctrl-C again to stop at once)")
        if self.phase == "fitting":
            if self._tune_listens():
                self._forwarded = True
                signal.raise_signal(signal.SIGUSR1)
            else:  # Tune.fit is starting: pass the request on once its handler is in place
                threading.Thread(target=self._forward_when_tune_listens, name="ctrl-c-to-tune", daemon=True).start()

    def _before_tune(self, signum: int, frame: Any) -> None:
        """SIGUSR1 before Tune listens: nothing to do (the driver checks ``requested`` itself)."""

    def _tune_listens(self) -> bool:
        handler = signal.getsignal(signal.SIGUSR1)
        return callable(handler) and handler != self._before_tune

    def _forward_when_tune_listens(self) -> None:
        while self.phase == "fitting" and not self._forwarded:
            if self._tune_listens():
                self._forwarded = True
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.05)


def _say(text: str) -> None:
    """One line on stderr from a signal handler: ``os.write``, since ``print`` may be mid-write."""
    try:
        os.write(sys.stderr.fileno(), (text + "\n").encode())
    except (OSError, ValueError):  # no usable stderr (closed, or replaced by an object without a descriptor)
        pass
