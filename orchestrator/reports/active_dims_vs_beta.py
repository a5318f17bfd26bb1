"""Report ``active_dims_vs_beta``: sparsity of the representation against beta (Zhang et al., Fig. 5 left).

Shows ``test/active_dims`` (the mean number of non-zero entries of the quantized representation
per test example) of each finished trial's last epoch against ``beta``, in figure
``active_dims_vs_beta.png``; and, when the sweep reports it, ``test/bits_per_dim`` (solid) with
``train/bits_per_dim`` (dashed) in a second figure ``bits_per_dim_vs_beta.png``, since bits and
counts do not share an axis. Both use the layout of :mod:`orchestrator.reports.versus_beta`: mean
over seeds with a band of +-1 sample standard deviation, one line per configuration of the other
swept axes, symlog beta axis when beta = 0 is swept, log y when every mean is positive, and a
"mean ± std (n)" table per metric. The ERROR trials are listed once, under the first figure.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.reports import register_report
from orchestrator.reports.common import SweepResults
from orchestrator.reports.document import Section
from orchestrator.reports.versus_beta import VersusBeta, versus_beta_sections

ACTIVE_DIMS = VersusBeta(
    report="active_dims_vs_beta",
    quantity="active dimensions",
    primary="test/active_dims",
    secondary=None,
    ylabel="active dimensions (non-zero entries per example)",
    log_y=True,
)
BITS_PER_DIM = VersusBeta(
    report="bits_per_dim_vs_beta",
    quantity="bits per dimension",
    primary="test/bits_per_dim",
    secondary="train/bits_per_dim",
    ylabel="rate (bits per dimension)",
    log_y=True,
    list_errors=False,
)


@register_report("active_dims_vs_beta")
def active_dims_vs_beta(results: SweepResults, out_dir: Path) -> list[Section]:
    """Active dimensions vs beta, and bits per dimension when reported; writes their PNGs into ``out_dir``."""
    sections = versus_beta_sections(results, out_dir, ACTIVE_DIMS)
    if BITS_PER_DIM.primary in results.final.columns:
        sections += versus_beta_sections(results, out_dir, BITS_PER_DIM)
    return sections
