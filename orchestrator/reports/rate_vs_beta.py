"""Report ``rate_vs_beta``: final rate against beta (figure ``rate_vs_beta.png``).

Shows ``test/rate_bits`` of each finished trial's last epoch against ``beta`` (mean over seeds,
band of +-1 sample standard deviation), with ``train/rate_bits`` dashed in the same colour when
the sweep reports it; one line per configuration of the other swept axes; plus a
"mean ± std (n)" table per metric. The rate is the compression term of the objective in bits per
example, as the trial reports it (e.g. the entropy-model rate of the rounded latent for ``dib``).
The y axis is logarithmic when every plotted mean is positive. The layout is described
in :mod:`orchestrator.reports.versus_beta`.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.reports import register_report
from orchestrator.reports.common import SweepResults
from orchestrator.reports.document import Section
from orchestrator.reports.versus_beta import VersusBeta, versus_beta_sections

SPEC = VersusBeta(
    report="rate_vs_beta",
    quantity="rate",
    primary="test/rate_bits",
    secondary="train/rate_bits",
    ylabel="rate (bits per example)",
    log_y=True,
)


@register_report("rate_vs_beta")
def rate_vs_beta(results: SweepResults, out_dir: Path) -> list[Section]:
    """Rate vs beta; writes ``out_dir/rate_vs_beta.png``."""
    return versus_beta_sections(results, out_dir, SPEC)
