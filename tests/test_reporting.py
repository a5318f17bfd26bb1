"""BackgroundReporter: training goes on while a report travels; order, checkpoints and failures kept."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest

from trainables.reporting import BackgroundReporter


class SlowDriver:
    """A report function that blocks until released, as Tune's does until the driver asks again."""

    def __init__(self):
        self.release = threading.Event()
        self.delivered: list[tuple[int, str | None]] = []

    def __call__(self, metrics, checkpoint_dir):
        self.release.wait(timeout=30)
        text = (Path(checkpoint_dir) / "state.pt").read_text() if checkpoint_dir else None
        self.delivered.append((metrics["epoch"], text))


def test_the_caller_does_not_wait_for_the_driver_and_reports_arrive_in_order():
    driver = SlowDriver()
    with BackgroundReporter(driver, max_pending=3) as report:
        for epoch in range(1, 4):  # one in the thread, two queued: none of these calls blocks
            report({"epoch": epoch}, None)
        assert driver.delivered == []  # the driver has not answered yet, and training went on
        driver.release.set()
    assert driver.delivered == [(1, None), (2, None), (3, None)]  # all delivered on leaving the block


def test_a_checkpoint_is_taken_over_so_the_caller_may_delete_its_directory():
    driver = SlowDriver()
    owned = []
    with BackgroundReporter(lambda m, d: (owned.append(d), driver(m, d))) as report:
        with tempfile.TemporaryDirectory() as directory:
            (Path(directory) / "state.pt").write_text("epoch 1")
            report({"epoch": 1}, directory)
        # the caller's directory is gone before the report is delivered
        driver.release.set()
    assert driver.delivered == [(1, "epoch 1")]
    assert owned[0] != directory and not Path(owned[0]).exists()  # the reporter's copy is removed once delivered


def test_a_failed_report_is_raised_in_the_training_thread_and_later_reports_are_dropped():
    delivered = []

    def report_fn(metrics, checkpoint_dir):
        if metrics["epoch"] == 2:
            raise ValueError("metrics contain a tensor")
        delivered.append(metrics["epoch"])

    reporter = BackgroundReporter(report_fn, max_pending=1)
    with pytest.raises(ValueError, match="tensor"):
        for epoch in range(1, 10):
            reporter({"epoch": epoch}, None)
        reporter.close()
    reporter.close(raise_failure=False)
    assert delivered == [1]


def test_a_stop_from_tune_ends_the_training_thread_quietly():
    def report_fn(metrics, checkpoint_dir):
        raise SystemExit(0)  # what tune.report does once the driver has stopped the trial

    reporter = BackgroundReporter(report_fn)
    reporter({"epoch": 1}, None)
    with pytest.raises(SystemExit):
        reporter.close()


def test_an_error_in_training_still_delivers_what_was_reported_before_it():
    driver = SlowDriver()
    driver.release.set()
    with pytest.raises(FloatingPointError):
        with BackgroundReporter(driver) as report:
            report({"epoch": 1}, None)
            raise FloatingPointError("non-finite training loss at epoch 2")
    assert driver.delivered == [(1, None)]
