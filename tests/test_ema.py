"""SyncFreeEMA: an EMA of the weights with TensorFlow's warm-up, without a host sync per update."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from trainables.ema import SyncFreeEMA, warmup_decay


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def _train_step(model: nn.Module, step: int) -> None:
    """Move every parameter and BN buffer (including the int num_batches_tracked)."""
    model.train()
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(step))
    model(x).square().mean().backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
            p.grad = None


def _ema_run(ema_class, device: str, steps: int = 5):
    model = _model().to(device)
    ema = ema_class(model)
    for step in range(steps):
        _train_step(model, step)
        ema.update_parameters(model)
    return model, ema


def test_warmup_decay_is_tensorflows_num_updates_rule():
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 8) == pytest.approx(0.5)
    assert warmup_decay(0.999, 80) == pytest.approx(0.9)
    assert warmup_decay(0.999, 8989) < 0.999  # (1 + t) / (10 + t) reaches 0.999 at t = 8,990
    assert warmup_decay(0.999, 8990) == warmup_decay(0.999, 10**6) == 0.999


def test_warmup_on_one_weight_by_hand():
    """A weight that starts at 0 and is 1 after every step: with the warm-up the average after n
    updates is 1 - prod_{t<n} (1 + t) / (10 + t) = 1 - n! 9! / (n + 9)! = 1 - 1 / C(n + 9, 9)
    (0.9, then 1 - 1/55, ...); without it, 1 - 0.999 ** n."""
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = SyncFreeEMA(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for n in range(1, 6):
        ema.update_parameters(model)
        assert ema.module.weight.item() == pytest.approx(1 - 1 / math.comb(n + 9, 9), rel=1e-6), n
    assert ema.module.weight.item() == pytest.approx(2001 / 2002, rel=1e-6)  # not 1 - 0.999 ** 5 = 0.005
    assert int(ema.n_averaged) == 5


def test_sync_free_ema_follows_the_warmup_formula_on_a_real_model():
    """Every parameter and buffer, update by update, against ``d * average + (1 - d) * current``
    computed here in float64 with ``d = min(0.9, (1 + t) / (10 + t))``."""
    model = _model()
    ema = SyncFreeEMA(model, 0.9)
    reference = {k: v.detach().clone().double() for k, v in model.state_dict().items()}  # the initial weights
    for t in range(5):
        _train_step(model, t)
        ema.update_parameters(model)
        d = min(0.9, (1 + t) / (10 + t))
        for key, current in model.state_dict().items():
            reference[key] = d * reference[key] + (1 - d) * current.double()
            if not current.is_floating_point():  # int buffers truncate, as torch's EMA's do
                reference[key] = reference[key].trunc()
        for key, value in ema.module.state_dict().items():
            torch.testing.assert_close(value.double(), reference[key], rtol=1e-6, atol=1e-7, msg=key)
    # and the average lags behind the weights, as an average should
    assert not torch.allclose(ema.module[3].weight, model[3].weight)


def test_after_the_warmup_it_is_torchs_averaged_model_exactly():
    """Once (1 + t) / (10 + t) >= decay (t >= 8 for decay 0.5), each update is torch's EMA update:
    torch's AveragedModel loaded from our state dict (the same keys: checkpoints load either way)
    and updated alongside ends bit for bit where ours does."""
    model, ours = _ema_run(lambda m: SyncFreeEMA(m, 0.5), "cpu", steps=8)
    assert warmup_decay(0.5, 7) < 0.5 == warmup_decay(0.5, 8)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    assert torchs.state_dict().keys() == ours.state_dict().keys()
    torchs.load_state_dict(ours.state_dict())
    for step in range(8, 12):
        _train_step(model, step)
        ours.update_parameters(model)
        torchs.update_parameters(model)
    for key, value in torchs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert int(ours.n_averaged) == 12


def test_sync_free_ema_resumes_from_a_state_dict_as_if_never_stopped():
    _, straight = _ema_run(lambda m: SyncFreeEMA(m, 0.9), "cpu")
    model = _model()
    first = SyncFreeEMA(model, 0.9)
    for step in range(3):
        _train_step(model, step)
        first.update_parameters(model)
    resumed = SyncFreeEMA(model, 0.9)
    resumed.load_state_dict(first.state_dict())
    for step in range(3, 5):
        _train_step(model, step)
        resumed.update_parameters(model)
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_sync_free_ema_refuses_another_model_and_a_bad_decay():
    ema = SyncFreeEMA(_model(), 0.9)
    with pytest.raises(ValueError, match="EMA of a model with 9 tensors updated from one with 2"):
        ema.update_parameters(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"EMA decay=1.5: expected a number in \[0, 1\]"):
        SyncFreeEMA(_model(), 1.5)


def test_vib_digits_evaluates_an_ema_close_to_the_trained_weights(tmp_path: Path, one_thread_per_module):
    """End to end through the harness: a 5-epoch vib trial on the digits (1,347 training images,
    batch 100: 70 updates) with ``ema_decay=0.999``. The test rate it reports, which is the EMA's,
    is within 5% of the raw trained weights' rate under the same evaluation. Without the warm-up
    the EMA is still 93% the initial weights (0.999 ** 70) and reports about 1,650 bits against
    about 160. The cosine schedule anneals the lr so that the weights settle by the last epoch:
    on a short run the warmed-up EMA averages about the last ninth of the updates, and at a
    constant lr, while the rate still climbs, it lags the weights by several percent (8.6% at
    beta 1e-3, lr 1e-3 in a run of this test's setup)."""
    from search_spaces import get_sweep
    from trainables.data import load_dataset
    from trainables.harness import CHECKPOINT_FILE, _evaluate, build_training, run_trial

    config = get_sweep("vib_digits").trial_configs()[0]
    config.update(epochs=5, ema_decay=0.999, beta=1e-3, lr_schedule="cosine", evaluations="", infoplane_every=0,
                  checkpoint_min_seconds=0.0)
    reported = {}

    def report(metrics, directory):
        reported["metrics"] = dict(metrics)
        if directory is not None:
            reported["state"] = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True)

    run_trial(config, data_dir=tmp_path, device=torch.device("cpu"), report=report)
    assert reported["metrics"]["epoch"] == 5 and int(reported["state"]["ema"]["n_averaged"]) == 70

    data = load_dataset("digits", data_dir=tmp_path, device="cpu", train_subset=0, test_subset=0, seed=0)
    fresh, *_, fast = build_training(config, data, torch.device("cpu"))

    def rate_bits(state) -> float:
        fresh.load_state_dict(state)
        return _evaluate(fresh, data, config["eval_batch_size"], fast)["rate_bits"]

    ema_weights = {k.removeprefix("module."): v for k, v in reported["state"]["ema"].items() if k != "n_averaged"}
    ema_rate = reported["metrics"]["test/rate_bits"]
    assert rate_bits(ema_weights) == pytest.approx(ema_rate, rel=1e-9)  # the report is the EMA's
    raw_rate = rate_bits(reported["state"]["objective"])
    assert ema_rate == pytest.approx(raw_rate, rel=0.05), f"EMA {ema_rate:.1f} bits vs trained weights {raw_rate:.1f}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sync_free_ema_never_syncs_on_cuda_and_torchs_does():
    model = _model().cuda()
    ours = SyncFreeEMA(model, 0.9)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    torchs.update_parameters(model)  # torch's first update copies
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):  # ours, from the first update on (warm-up decays 0.1, 2/11, 0.25)
            ours.update_parameters(model)
        with pytest.raises(RuntimeError, match="synchroniz"):
            torchs.update_parameters(model)
    finally:
        torch.cuda.set_sync_debug_mode("default")
