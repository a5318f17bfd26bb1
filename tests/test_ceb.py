"""The Conditional Entropy Bottleneck: its loss against the formula, its gradients, its sweeps, that its rate falls as
beta grows, and its report panel beside a VIB run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence
from torch.nn import functional as F

from search_spaces import get_sweep
from trainables.config import parse_trial
from trainables.data import load_dataset
from trainables.objectives import build_objective
from trainables.objectives.ceb.model import ConditionalEntropyBottleneck
from orchestrator.run_record import latest_finished_run as find_finished_run
from trainables.objectives.ceb.report import ceb_vs_vib

CONFIG = {"objective": "ceb", "beta": 0.3, "latent_dim": 4, "hidden_dim": 16, "eval_samples": 3}


def make_ceb(**overrides) -> ConditionalEntropyBottleneck:
    torch.manual_seed(0)
    return build_objective({**CONFIG, **overrides}, (1, 8, 8), 10)


def tiny_batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 8, 8, generator=generator), torch.tensor([0, 3, 3, 9, 5, 1])


def by_hand(ceb: ConditionalEntropyBottleneck, x, y, beta: float):
    """(loss, ce, residual in nats) with torch.distributions, for the eps that torch.manual_seed(2) draws."""
    torch.manual_seed(2)
    mean, std = ceb.encoder(x)
    z = mean + std * torch.randn_like(std)
    means = ceb.backward_encoder(torch.eye(10))  # b's mean of every class: the layer applied to one-hot labels
    forward = Independent(Normal(mean, std), 1)
    backward = Independent(Normal(means[y], torch.ones_like(mean)), 1)
    every_class = Independent(Normal(means, torch.ones_like(means)), 1)
    if ceb.decoder is None:  # consistent: c(y|z) = b(z|y) / sum_y' b(z|y'), uniform p(y)
        log_c = every_class.log_prob(z[:, None, :]).log_softmax(dim=-1)
    else:
        log_c = ceb.decoder(z).log_softmax(dim=-1)
    ce = -log_c.gather(1, y[:, None]).mean()
    residual = (forward.log_prob(z) - backward.log_prob(z)).mean()
    return ce + beta * residual, ce, residual


@pytest.mark.parametrize("classifier", ["consistent", "softmax"])
def test_the_loss_is_the_variational_ceb_bound(classifier):
    ceb = make_ceb(classifier=classifier)
    x, y = tiny_batch()
    torch.manual_seed(2)
    terms = ceb(x, y)
    loss, ce, residual = by_hand(ceb, x, y, beta=0.3)
    assert set(terms) == {"loss", "ce", "rate_bits"}
    torch.testing.assert_close(terms["loss"], loss)
    torch.testing.assert_close(terms["ce"], ce)
    torch.testing.assert_close(terms["rate_bits"], residual / math.log(2))


def test_evaluated_rate_is_the_closed_form_kl_to_the_class_conditional():
    ceb = make_ceb()
    x, y = tiny_batch()
    mean, std = ceb.encoder(x)
    means = ceb.backward_encoder(torch.eye(10))[y]
    reference = kl_divergence(Independent(Normal(mean, std), 1), Independent(Normal(means, torch.ones_like(means)), 1))
    metrics = ceb.evaluate(x, y)
    assert set(metrics) == {"acc", "acc_mc", "ce", "rate_bits", "izy_bits"}
    torch.testing.assert_close(metrics["rate_bits"], reference.mean() / math.log(2))
    torch.testing.assert_close(metrics["izy_bits"], math.log2(10) - metrics["ce"] / math.log(2))


def test_logits_classify_one_sample_as_forward_does():
    ceb = make_ceb()
    x, y = tiny_batch()
    torch.manual_seed(2)
    logits = ceb.logits(x)
    _, ce, _ = by_hand(ceb, x, y, beta=0.3)
    assert logits.shape == (6, 10)
    torch.testing.assert_close(F.cross_entropy(logits, y), ce)


@pytest.mark.parametrize(("classifier", "beta"), [("consistent", 0.0), ("consistent", 0.3), ("softmax", 0.3)])
def test_gradients_reach_the_backward_encoder(classifier, beta):
    ceb = make_ceb(classifier=classifier, beta=beta)
    ceb(*tiny_batch())["loss"].backward()
    for name, parameter in ceb.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert {"backward_encoder.weight", "backward_encoder.bias"} <= {name for name, _ in ceb.named_parameters()}


@pytest.mark.parametrize("encoder", ["small_conv"])  # resnet18 is built by ceb_cifar's smoke test below
def test_conv_encoders_give_the_same_terms(encoder):
    ceb = make_ceb(encoder=encoder, feature_dim=8)
    terms = ceb(*tiny_batch())
    assert all(torch.isfinite(value) for value in terms.values())
    z, conditional = ceb.representation_sample(tiny_batch()[0])
    assert z.shape == (6, 4) and conditional.shape == (6,)


@pytest.mark.parametrize("name", ["ceb_digits", "ceb_cifar"])
def test_smoke_sweeps_validate_and_build(name):
    spec = get_sweep(name).with_overrides(smoke=True)
    assert "ceb_vs_vib" in spec.reports
    for trial in spec.trial_configs():
        assert isinstance(build_objective(parse_trial(trial), (1, 8, 8), 10), ConditionalEntropyBottleneck)


def test_ceb_digits_is_vib_digits_with_the_objective_swapped():
    ceb, vib = get_sweep("ceb_digits"), get_sweep("vib_digits")
    assert (ceb.dataset, ceb.epochs, ceb.evaluations, dict(ceb.config), dict(ceb.grid)) == (
        vib.dataset, vib.epochs, vib.evaluations, dict(vib.config), dict(vib.grid))
    assert ceb.objective == "ceb"


def test_ceb_cifar_is_the_papers_rho_grid_on_a_gpu():
    spec = get_sweep("ceb_cifar")
    rhos = sorted(-math.log(beta) for beta in spec.grid["beta"])
    assert len(rhos) == 25 and rhos[0] == pytest.approx(-1) and rhos[-1] == pytest.approx(5)
    assert spec.gpus_per_trial > 0 and spec.config["pgd_epsilons"] == "0.03137"


def test_the_rate_falls_as_beta_grows(one_thread_per_module):
    """The issue's claim, on the digits: a few epochs, same seed, the test rate at beta 1 far below that at 1e-3."""
    data = load_dataset("digits", data_dir="/nonexistent-data-dir", device="cpu")
    rates = {}
    for beta in (1e-3, 1.0):
        ceb = make_ceb(beta=beta, latent_dim=16, hidden_dim=64)
        optimiser = torch.optim.Adam(ceb.parameters(), lr=1e-3, betas=(0.5, 0.999))
        generator = torch.Generator().manual_seed(0)
        for _ in range(8):
            order = torch.randperm(len(data.train_y), generator=generator)
            for start in range(0, len(order), 100):
                batch = order[start:start + 100]
                optimiser.zero_grad()
                ceb(data.train_x[batch], data.train_y[batch])["loss"].backward()
                optimiser.step()
        ceb.eval()
        metrics = ceb.evaluate(data.test_x, data.test_y)
        rates[beta] = float(metrics["rate_bits"])
        if beta == 1e-3:
            assert metrics["acc"] > 0.8  # it learned the digits
    assert rates[1.0] < 0.5 * rates[1e-3], rates


# ---- the report panel -------------------------------------------------------------------------------------------

def write_run(root: Path, sweep: str, objective: str, *, state: str = "finished", fgsm_epsilon: float = 0.5,
              axes: tuple[str, ...] = ("beta", "latent_dim")) -> Path:
    """A results directory ``<root>/<sweep>_<time>`` with two betas x one latent_dim x two seeds, and its sweep.json."""
    run = root / f"{sweep}_2025-01-02_03-04-05"
    run.mkdir(parents=True)
    metadata = {b"sweep": json.dumps({"name": sweep, "axes": list(axes), "reports": ["ceb_vs_vib"],
                                      "objective": objective}).encode()}
    final, epochs, evaluations = [], [], []
    for number, (beta, seed) in enumerate((b, s) for b in (1e-3, 1.0) for s in (0, 1)):
        config = {"config/beta": beta, "config/latent_dim": 2}
        trial = {"trial_id": f"t{number}", **config}
        rate = (20.0 if beta < 1 else 2.0) + seed
        final.append({**trial, "status": "TERMINATED", "error": None, "epochs_completed": 2, "test/acc": 0.9 - 0.3 * beta,
                      "test/rate_bits": rate})
        epochs.append({**trial, "epoch": 2, "test/acc": 0.9})
        for epsilon in (0.1, fgsm_epsilon):
            evaluations.append({**trial, "evaluation": "fgsm", "metric": "acc", "norm": "linf", "epsilon": epsilon,
                                "value": 0.5 if epsilon == fgsm_epsilon else 0.8})
    for name, rows in (("final", final), ("epochs", epochs), ("evaluations", evaluations)):
        pq.write_table(pa.Table.from_pylist(rows).replace_schema_metadata(metadata), run / f"{name}.parquet")
    (run / "sweep.json").write_text(json.dumps({"spec": {}, "state": state}))
    return run


def test_report_puts_a_finished_vib_digits_run_beside_ceb(tmp_path):
    from orchestrator.reports import load_results

    ceb_run = write_run(tmp_path, "ceb_digits", "ceb", state="running")
    write_run(tmp_path, "vib_digits", "vib")
    (section,) = ceb_vs_vib(load_results(ceb_run), tmp_path)
    assert (tmp_path / "ceb_vs_vib.png").stat().st_size > 0
    assert any("vib_digits_2025-01-02_03-04-05" in paragraph for paragraph in section.paragraphs)
    rows = section.tables[0].rows
    assert [row[0] for row in rows] == ["CEB", "CEB", "VIB", "VIB"]
    assert rows[0][3].startswith("20.5 ± 0.71 (2)") and rows[0][5] == "80.0 ± 0.0 (2)"  # rate, FGSM at the smallest eps


def test_report_says_so_when_there_is_no_finished_vib_run(tmp_path):
    from orchestrator.reports import load_results

    ceb_run = write_run(tmp_path, "ceb_digits", "ceb")
    write_run(tmp_path / "elsewhere", "vib_digits", "vib")
    unfinished = write_run(tmp_path, "vib_digits", "vib", state="interrupted")
    assert find_finished_run(tmp_path, "vib_digits") is None
    (section,) = ceb_vs_vib(load_results(ceb_run), tmp_path)
    assert sum("No finished `vib_digits` run" in paragraph for paragraph in section.paragraphs) == 1
    assert {row[0] for row in section.tables[0].rows} == {"CEB"}
    assert find_finished_run(tmp_path / "elsewhere", "vib_digits") is not None and unfinished.is_dir()


def test_report_of_a_beta_only_sweep_without_a_vib_match(tmp_path):
    from orchestrator.reports import load_results

    ceb_run = write_run(tmp_path, "ceb_cifar", "ceb", axes=("beta",))
    (section,) = ceb_vs_vib(load_results(ceb_run), tmp_path)
    assert sum("No VIB sweep matches `ceb_cifar`" in paragraph for paragraph in section.paragraphs) == 1
    assert [row[1] for row in section.tables[0].rows] == ["all trials", "all trials"]
    assert (tmp_path / "ceb_vs_vib.png").stat().st_size > 0
