"""Tune reports sent from a background thread, so a trial's training never waits on the driver.

Ray Tune's function trainable blocks the thread that calls ``tune.report`` until the driver has
handled that result (loggers, callbacks, checkpoint bookkeeping) and asked the trial for the next
one, a round trip that grows with every trial a busy driver serves (docs/benchmarks.md).
:class:`BackgroundReporter` hands each report to a thread of its own
and lets training go straight on to the next epoch; reports still reach Tune one at a time, in
order, and all of them before the trial's function returns.

A checkpoint's files are moved (a rename, no copy) into a directory the reporter owns, so the
caller may delete its own directory at once; the reporter deletes its copy once Tune has
persisted it. At most ``max_pending`` reports wait in the queue; a caller further ahead than that
waits, so a trial that is killed loses at most that many epochs more than it would have.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

Report = Callable[[dict[str, Any], "str | None"], None]
_CLOSE = object()


class BackgroundReporter:
    """``report(metrics, checkpoint_dir_or_None)``, called from a background thread.

    Use as a context manager around the training loop: leaving it waits until every report has
    been delivered. An exception raised by ``report`` (``SystemExit`` when Tune stops the trial)
    is raised in the training thread at its next report, or on leaving the block.
    """

    def __init__(self, report: Report, max_pending: int = 2):
        if max_pending < 1:
            raise ValueError(f"max_pending {max_pending}: expected an integer >= 1")
        self._report = report
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._deliver, name="tune-report", daemon=True)
        self._thread.start()

    def __call__(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self._raise_failure()
        owned = None
        if checkpoint_dir is not None:
            owned = tempfile.mkdtemp(prefix="ib_sweeps_checkpoint_")
            for entry in Path(checkpoint_dir).iterdir():
                os.replace(entry, Path(owned) / entry.name)
        self._queue.put((metrics, owned))

    def __enter__(self) -> BackgroundReporter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(raise_failure=error is None)

    def close(self, raise_failure: bool = True) -> None:
        """Wait until every queued report has been delivered (or dropped after a failure)."""
        if self._thread.is_alive():
            self._queue.put(_CLOSE)
            self._thread.join()
        if raise_failure:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _deliver(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                return
            metrics, directory = item
            try:
                if self._failure is None:  # after a failure or a stop the rest is dropped
                    self._report(metrics, directory)
            except BaseException as failure:  # noqa: BLE001 - handed to the training thread
                self._failure = failure
            finally:
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)
