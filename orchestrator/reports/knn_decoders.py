"""Report ``knn_decoders``: test accuracy of the decoders fitted after training, against beta.

For ``knn_ib`` (Kirsch, Lyle and Gal, Fig. 3), whose encoder is trained without a decoder:
``decoder/resfc_acc`` (the deep residual fully-connected decoder, solid, band of +-1 sample
standard deviation over seeds) and ``decoder/gmm_acc`` (one Gaussian per class, dashed) of each
finished trial, read from its last epoch, against beta (the paper's beta''); one line per
configuration of the other swept axes, and a "mean ± std (n)" table per decoder. The layout is
:mod:`orchestrator.reports.versus_beta`'s; the paper reports 92% on CIFAR-10 with either decoder.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.reports import register_report
from orchestrator.reports.common import SweepResults
from orchestrator.reports.document import Section
from orchestrator.reports.versus_beta import VersusBeta, versus_beta_sections

SPEC = VersusBeta(
    report="knn_decoders",
    quantity="decoder test accuracy",
    primary="decoder/resfc_acc",
    secondary="decoder/gmm_acc",
    ylabel="test accuracy (fraction correct)",
    log_y=False,
    list_errors=False,
)


@register_report("knn_decoders")
def knn_decoders(results: SweepResults, out_dir: Path) -> list[Section]:
    """Decoder accuracies vs beta; writes ``out_dir/knn_decoders.png``."""
    return versus_beta_sections(results, out_dir, SPEC)
