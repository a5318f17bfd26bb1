"""Report ``accuracy_vs_beta``: final test accuracy against beta (figure ``accuracy_vs_beta.png``).

Shows ``test/acc`` of each finished trial's last epoch against ``beta`` (mean over seeds, band of
+-1 sample standard deviation), with ``test/acc_mc`` (accuracy of the Monte Carlo evaluation, e.g.
VIB's softmax averaged over sampled latents) dashed in the same colour when the sweep reports it;
one line per configuration of the other swept axes; plus a "mean ± std (n)" table per metric.
The layout is described in :mod:`orchestrator.reports.versus_beta`.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.reports import register_report
from orchestrator.reports.common import SweepResults
from orchestrator.reports.document import Section
from orchestrator.reports.versus_beta import VersusBeta, versus_beta_sections


@register_report("accuracy_vs_beta")
def accuracy_vs_beta(results: SweepResults, out_dir: Path) -> list[Section]:
    """Test accuracy vs beta; writes ``out_dir/accuracy_vs_beta.png``."""
    finished = results.finished
    as_percent = "test/acc" in finished.columns and bool((finished["test/acc"] > 1).any())
    spec = VersusBeta(
        report="accuracy_vs_beta",
        quantity="test accuracy",
        primary="test/acc",
        secondary="test/acc_mc",
        ylabel="test accuracy (%)" if as_percent else "test accuracy (fraction correct)",
        log_y=False,
    )
    return versus_beta_sections(results, out_dir, spec)
