"""The reports that read ``evaluations.parquet``: robustness, active dimensions, spectra.

The fake sweep: beta in {0, 0.5, 8} x entropy_model in {factorized, hyperprior} x seeds {0, 1},
all finished, plus one ERROR trial (beta=0.5, factorized, seed 2) whose evaluation rows would drag
its cells down if they were (wrongly) averaged. Evaluations: clean accuracy, FGSM at 2/255, 4/255
and 8/255, PGD-7, PGD-20 and APGD-CE at 8/255, robust accuracy (the worst case over those) at each
epsilon, three gradient-masking checks per trial of which one fails
(``pgd_monotone_in_steps`` of beta=8, hyperprior, seed 1), and 10 singular values per trial.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from orchestrator.reports import build_reports, load_results  # noqa: E402
from tests.test_reports import markdown_table  # noqa: E402
from orchestrator.reports.data import evaluation_rows, format_epsilon, summarize_evaluation  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORTS = ["accuracy_vs_beta", "rate_vs_beta", "robustness", "active_dims_vs_beta", "spectra"]
SWEEP = {
    "name": "dib_cifar",
    "objective": "dib",
    "dataset": "cifar10",
    "axes": ["beta", "entropy_model"],
    "metric": "test/acc",
    "mode": "max",
    "reports": REPORTS,
}
BETAS = [0.0, 0.5, 8.0]
MODELS = ["factorized", "hyperprior"]
SEEDS = [0, 1]
FGSM_EPSILONS = [2 / 255, 4 / 255, 8 / 255]
PGD_EPSILON = 8 / 255
PGD_STEPS = [7, 20]
CHECKS = ["fgsm_monotone_in_epsilon", "pgd_monotone_in_steps", "pgd_not_weaker_than_fgsm"]
VIOLATION = (8.0, "hyperprior", 1, "pgd_monotone_in_steps")  # (beta, entropy_model, seed, check)
ERROR_TRIAL = (0.5, "factorized", 2)


def clean_accuracy(beta: float, model: str, seed: int) -> float:
    return 0.78 - 0.005 * beta + 0.02 * (model == "hyperprior") + 0.01 * seed


def attack_accuracy(beta: float, model: str, seed: int, epsilon: float, steps: int = 1) -> float:
    return max(0.0, 0.08 + 0.4 * beta / (beta + 0.5) - 0.001 * steps + 0.01 * seed - epsilon + 0.03 * (model == "hyperprior"))


def apgd_accuracy(beta: float, model: str, seed: int) -> float:
    return attack_accuracy(beta, model, seed, PGD_EPSILON, 20) - 0.004


def worst_case_accuracy(beta: float, model: str, seed: int, epsilon: float) -> float:
    """A stand-in for the share that survived every attack: below the lowest of them."""
    attacks = [attack_accuracy(beta, model, seed, epsilon)]
    if epsilon == PGD_EPSILON:
        attacks += [attack_accuracy(beta, model, seed, epsilon, steps) for steps in PGD_STEPS] + [apgd_accuracy(beta, model, seed)]
    return min(attacks) - 0.01


def active_dims(beta: float, model: str, seed: int) -> float:
    return 512.0 / (1 + 8 * beta) / (1 + (model == "hyperprior")) + seed


def singular_value(beta: float, seed: int, index: int) -> float:
    return (1.0 + beta) * (0.5 ** (index * (1 + beta / 4))) * (1 + 0.1 * seed)


def evaluation_rows_of(trial_id: str, config: dict, beta: float, model: str, seed: int, *, violation: bool, cw_l2: bool) -> list[dict]:
    base = {"trial_id": trial_id, **config, "norm": "", "epsilon": None, "steps": None, "index": None}
    rows = [{**base, "evaluation": "clean", "metric": "acc", "value": clean_accuracy(beta, model, seed)}]
    for epsilon in FGSM_EPSILONS:
        rows.append({**base, "evaluation": "fgsm", "metric": "acc", "norm": "linf", "epsilon": epsilon, "value": attack_accuracy(beta, model, seed, epsilon)})
    for steps in PGD_STEPS:
        value = attack_accuracy(beta, model, seed, PGD_EPSILON, steps)
        rows.append({**base, "evaluation": "pgd", "metric": "acc", "norm": "linf", "epsilon": PGD_EPSILON, "steps": steps, "value": value})
    rows.append({**base, "evaluation": "apgd_ce", "metric": "acc", "norm": "linf", "epsilon": PGD_EPSILON, "steps": 100,
                 "value": apgd_accuracy(beta, model, seed)})
    for epsilon in FGSM_EPSILONS:
        rows.append({**base, "evaluation": "worst_case", "metric": "acc", "norm": "linf", "epsilon": epsilon,
                     "value": worst_case_accuracy(beta, model, seed, epsilon)})
    if cw_l2:
        for epsilon in (0.25, 0.5):
            rows.append({**base, "evaluation": "cw_l2", "metric": "acc", "norm": "l2", "epsilon": epsilon, "value": attack_accuracy(beta, model, seed, epsilon / 4)})
    for check in CHECKS:
        failed = violation and (beta, model, seed, check) == VIOLATION
        rows.append({**base, "evaluation": "masking", "metric": check, "value": 1.0 if failed else 0.0})
    for index in range(10):
        rows.append({**base, "evaluation": "spectrum", "metric": "singular_value", "index": index, "value": singular_value(beta, seed, index)})
    return rows


EVALUATION_SCHEMA = {
    "trial_id": pa.string(), "config/beta": pa.float64(), "config/entropy_model": pa.string(), "config/seed": pa.int64(),
    "evaluation": pa.string(), "metric": pa.string(), "norm": pa.string(), "epsilon": pa.float64(),
    "steps": pa.int64(), "index": pa.int64(), "value": pa.float64(),
}


def write_fake_sweep(directory: Path, *, evaluations: bool = True, violation: bool = True, cw_l2: bool = False, sparsity: bool = True) -> Path:
    """Write final.parquet, epochs.parquet and (unless told not to) evaluations.parquet."""
    final_rows, epoch_rows, eval_rows = [], [], []
    trials = [(b, m, s) for b in BETAS for m in MODELS for s in SEEDS] + [ERROR_TRIAL]
    for number, (beta, model, seed) in enumerate(trials):
        trial_id = f"trial_{number:03d}"
        failed = (beta, model, seed) == ERROR_TRIAL
        config = {"config/beta": beta, "config/entropy_model": model, "config/seed": seed}
        metrics = {"test/acc": clean_accuracy(beta, model, seed), "test/rate_bits": 100.0 / (1 + beta) + seed}
        if sparsity:
            metrics.update({"test/active_dims": active_dims(beta, model, seed), "test/bits_per_dim": 2.0 / (1 + beta), "train/bits_per_dim": 2.2 / (1 + beta)})
        metrics["robust/pgd7_acc"] = attack_accuracy(beta, model, seed, PGD_EPSILON, 7)
        final_rows.append({"trial_id": trial_id, "status": "ERROR" if failed else "TERMINATED", "error": "RuntimeError: boom" if failed else None,
                           "epochs_completed": 1 if failed else 2, **config, **metrics})
        epoch_rows += [{"trial_id": trial_id, "epoch": epoch, **config, "test/acc": metrics["test/acc"] * epoch / 2} for epoch in (1, 2)]
        trial_rows = evaluation_rows_of(trial_id, config, beta, model, seed, violation=violation, cw_l2=cw_l2)
        if failed:  # rows that would wreck every cell of its configuration if they were averaged
            trial_rows = [{**row, "value": 0.0} for row in trial_rows if row["evaluation"] != "masking"] + [
                {**trial_rows[0], "evaluation": "masking", "metric": CHECKS[0], "value": 1.0}]
        eval_rows += trial_rows
    metadata = {b"sweep": json.dumps(SWEEP).encode()}
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(final_rows).replace_schema_metadata(metadata), directory / "final.parquet")
    pq.write_table(pa.Table.from_pylist(epoch_rows).replace_schema_metadata(metadata), directory / "epochs.parquet")
    if evaluations:
        table = pa.Table.from_pylist(eval_rows, schema=pa.schema(EVALUATION_SCHEMA)).replace_schema_metadata(metadata)
        pq.write_table(table, directory / "evaluations.parquet")
    return directory




def section(markdown: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next section."""
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def percent_cell(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} ({len(values)})"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_reports(write_fake_sweep(tmp_path_factory.mktemp("sweep") / "results"))


def test_build_reports_writes_every_figure_and_the_markdown(built):
    text = built.read_text()
    for name in ("curves.png", "accuracy_vs_beta.png", "rate_vs_beta.png", "fgsm_curves.png",
                 "active_dims_vs_beta.png", "bits_per_dim_vs_beta.png", "spectra.png"):
        data = (built.parent / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name
        assert f"({name})" in text, name
    for title in ("Adversarial robustness", "Gradient-masking checks", "Active dimensions vs beta", "Bits per dimension vs beta", "Singular values of the classifier"):
        assert f"\n## {title}\n" in text
    assert not (built.parent / "cw_l2_curves.png").exists()  # the sweep ran no CW-L2
    assert not list(built.parent.glob(".*.tmp"))


def test_robustness_table_has_the_papers_layout_and_the_right_means(built):
    text = built.read_text()
    table = markdown_table(text, "Test accuracy (%) under attack, entropy_model=factorized")
    assert table[0] == ["evaluation", "CE (beta=0)", "beta=0.5", "beta=8"]
    # the budgets where a strong attack ran (8/255; 2/255 and 4/255 had FGSM alone), headline first
    assert [row[0] for row in table[1:]] == ["Clean", "**robust accuracy, L∞ eps 8/255**", "FGSM, L∞ eps 8/255",
                                             "PGD-7, L∞ eps 8/255", "PGD-20, L∞ eps 8/255", "APGD-CE, L∞ eps 8/255"]
    pgd7 = [attack_accuracy(0.5, "factorized", seed, PGD_EPSILON, 7) for seed in SEEDS]
    # The ERROR trial (accuracy 0 everywhere) is left out: n = 2, and the mean is the seeds' mean.
    assert table[4][2] == percent_cell(pgd7) == "24.7 ± 0.7 (2)"
    worst = [worst_case_accuracy(0.5, "factorized", seed, PGD_EPSILON) for seed in SEEDS]
    assert table[2][2] == f"**{percent_cell(worst)}**"
    assert table[1][1] == percent_cell([clean_accuracy(0.0, "factorized", seed) for seed in SEEDS]) == "78.5 ± 0.7 (2)"
    assert markdown_table(text, "Test accuracy (%) under attack, entropy_model=hyperprior")[0][1] == "CE (beta=0)"


def test_a_violated_masking_check_is_listed_and_warned_about_first(built):
    text = built.read_text()
    robustness = section(text, "Adversarial robustness")
    assert robustness.lstrip().startswith("**Warning: 1 of 36 gradient-masking checks failed, on 1 of 12 trials (beta=8, entropy_model=hyperprior).")
    violations = markdown_table(text, "Violated gradient-masking checks (1)")
    trial = next(i for i, c in enumerate((b, m, s) for b in BETAS for m in MODELS for s in SEEDS) if c == VIOLATION[:3])
    assert violations[0] == ["trial_id", "beta", "entropy_model", "seed", "check"]
    assert violations[1] == [f"trial_{trial:03d}", "8", "hyperprior", "1", "`pgd_monotone_in_steps`"]
    # A check on PGD's convergence flags the violating trial's PGD cells only: not its clean, FGSM,
    # APGD or robust-accuracy cells (the worst case counts APGD), nor another trial's cells.
    hyperprior = markdown_table(text, "Test accuracy (%) under attack, entropy_model=hyperprior")
    marked = [row[0] for row in hyperprior[1:] if row[3].rstrip("*").endswith("⚠")]
    assert marked == ["PGD-7, L∞ eps 8/255", "PGD-20, L∞ eps 8/255"]
    assert not any(row[2].rstrip("*").endswith("⚠") for row in hyperprior[1:])
    html = (built.parent / "report.html").read_text()
    assert "<p><strong>Warning: 1 of 36 gradient-masking checks failed" in html


def test_all_checks_passing_says_so_without_a_warning(tmp_path):
    text = build_reports(write_fake_sweep(tmp_path / "results", violation=False)).read_text()
    assert "All 36 checks passed on 12 trials." in text
    assert "Warning" not in text and "⚠" not in text


def test_a_sweep_without_evaluations_still_builds_every_report(tmp_path):
    directory = write_fake_sweep(tmp_path / "results", evaluations=False)
    assert load_results(directory).evaluations is None
    text = build_reports(directory).read_text()
    assert "The sweep wrote no `evaluations.parquet` (it ran no evaluation suite), so there is no robustness table" in text
    assert "The sweep wrote no `evaluations.parquet` (it ran no evaluation suite), so there is no spectrum figure." in text
    assert not (directory / "reports" / "fgsm_curves.png").exists() and not (directory / "reports" / "spectra.png").exists()
    assert (directory / "reports" / "active_dims_vs_beta.png").exists()  # from final.parquet alone


def test_an_evaluations_file_without_rows_gives_sentences(tmp_path):
    directory = write_fake_sweep(tmp_path / "results", evaluations=False)
    empty = pa.table({name: pa.array([], type) for name, type in EVALUATION_SCHEMA.items()})
    pq.write_table(empty, directory / "evaluations.parquet")
    results = load_results(directory)
    assert results.evaluations is not None and results.evaluations.empty
    text = build_reports(directory).read_text()
    assert "has no `clean`, `fgsm`, `pgd` or `cw_l2` accuracy of a finished trial" in text
    assert "No gradient-masking check ran" in text and "has no `spectrum` rows" in text


def test_load_results_exposes_the_evaluations_of_finished_trials(tmp_path):
    results = load_results(write_fake_sweep(tmp_path / "results"))
    per_trial = 1 + 2 * len(FGSM_EPSILONS) + len(PGD_STEPS) + 1 + len(CHECKS) + 10  # worst case at each FGSM epsilon, APGD-CE
    assert len(results.finished_evaluations) == 12 * per_trial
    assert len(results.evaluations) > len(results.finished_evaluations)  # the ERROR trial's rows are kept, not used
    assert str(results.evaluations["steps"].dtype) == "Int64" and str(results.evaluations["epsilon"].dtype) == "float64"
    spectrum = summarize_evaluation(evaluation_rows(results, "spectrum", "singular_value"), ["index"])
    cell = spectrum[(spectrum["configuration"] == "entropy_model=factorized") & (spectrum["beta"] == 8.0) & (spectrum["index"] == 3)].iloc[0]
    assert cell["mean"] == pytest.approx(statistics.mean(singular_value(8.0, seed, 3) for seed in SEEDS)) and cell["n"] == 2


def test_evaluations_with_other_metadata_or_without_a_column_are_refused(tmp_path):
    directory = write_fake_sweep(tmp_path / "results")
    table = pq.read_table(directory / "evaluations.parquet")
    pq.write_table(table.replace_schema_metadata({b"sweep": json.dumps({**SWEEP, "name": "other"}).encode()}), directory / "evaluations.parquet")
    with pytest.raises(ValueError, match="carry different sweep metadata"):
        load_results(directory)
    pq.write_table(table.drop_columns(["value"]), directory / "evaluations.parquet")
    with pytest.raises(ValueError, match=r"evaluations.parquet: lacks the column\(s\) value"):
        load_results(directory)


def test_a_check_on_the_gradient_itself_flags_every_attack_row(tmp_path):
    directory = write_fake_sweep(tmp_path / "results")
    table = pq.read_table(directory / "evaluations.parquet")
    rows = [{**row, "metric": "gradient_nonzero"} if row["metric"] == VIOLATION[3] else row for row in table.to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema).replace_schema_metadata(table.schema.metadata),
                   directory / "evaluations.parquet")
    hyperprior = markdown_table(build_reports(directory).read_text(), "Test accuracy (%) under attack, entropy_model=hyperprior")
    marked = [row[0] for row in hyperprior[1:] if row[3].rstrip("*").endswith("⚠")]
    assert marked == [row[0] for row in hyperprior[2:]]  # every row but Clean


def test_cw_l2_rows_get_their_own_figure(tmp_path):
    built = build_reports(write_fake_sweep(tmp_path / "results", cw_l2=True))
    assert (built.parent / "cw_l2_curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "(cw_l2_curves.png)" in built.read_text()


def test_active_dims_table_and_its_absence(tmp_path, built):
    table = markdown_table(built.read_text(), "Final `test/active_dims`")
    assert table[0] == ["entropy_model", "beta=0", "beta=0.5", "beta=8"]
    assert table[1][2] == f"{statistics.mean(active_dims(0.5, 'factorized', seed) for seed in SEEDS):.4g} ± 0.71 (2)" == "102.9 ± 0.71 (2)"
    text = build_reports(write_fake_sweep(tmp_path / "results", sparsity=False)).read_text()
    assert "`final.parquet` has no `test/active_dims` column, so there is no active dimensions vs beta." in text
    assert "Bits per dimension" not in text


@pytest.mark.parametrize(
    ("epsilon", "label"),
    [(8 / 255, "8/255"), (1 / 255, "1/255"), (8 / 255 + 5e-7, "8/255"), (8 / 255 + 1e-5, "0.0313825"), (0.5, "0.5"), (0.0, "0"), (0.2, "0.2"), (51 / 255, "0.2")],
)
def test_epsilon_is_shown_in_pixel_levels_when_it_is_one(epsilon, label):
    assert format_epsilon(epsilon) == label


def test_an_l2_radius_or_the_whole_range_is_never_a_pixel_level():
    assert format_epsilon(1.0, "l2") == "1" and format_epsilon(2 / 255, "l2") == "0.00784314"
    assert format_epsilon(1.0) == "1"  # the unbounded attack's box, not "255/255"


def test_beta_zero_is_called_cross_entropy_only_where_it_is():
    from orchestrator.reports.data import beta_label

    assert beta_label(0.0, "dib") == beta_label(0.0, "vib") == "CE (beta=0)"
    for objective in ("knn_ib", "simclr_dib", ""):  # beta'' = 0 keeps H[Z|Y]; beta = 0 of SimCLR is SimCLR
        assert beta_label(0.0, objective) == "beta=0"
    assert beta_label(0.5, "dib") == "beta=0.5"
