"""SyncFreeEMA: torch's AveragedModel EMA, without the per-update host sync."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from trainables.ema import SyncFreeEMA


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


def _ema_run(ema_class, device: str):
    model = _model().to(device)
    ema = ema_class(model)
    for step in range(5):
        _train_step(model, step)
        ema.update_parameters(model)
    return model, ema


def test_sync_free_ema_matches_torchs_averaged_model_exactly():
    _, ours = _ema_run(lambda m: SyncFreeEMA(m, 0.9), "cpu")
    _, torchs = _ema_run(lambda m: AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True), "cpu")
    assert ours.state_dict().keys() == torchs.state_dict().keys()  # checkpoints load either way
    for key, value in torchs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert int(ours.n_averaged) == 5
    # and the average is not just the last weights: decay 0.9 over five updates lags behind them
    model, _ = _ema_run(lambda m: SyncFreeEMA(m, 0.9), "cpu")
    assert not torch.equal(ours.module[3].weight, model[3].weight)


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


def test_sync_free_ema_refuses_another_model():
    ema = SyncFreeEMA(_model(), 0.9)
    with pytest.raises(ValueError, match="EMA of a model with 9 tensors updated from one with 2"):
        ema.update_parameters(nn.Linear(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sync_free_ema_never_syncs_on_cuda_and_torchs_does():
    model = _model().cuda()
    ours = SyncFreeEMA(model, 0.9)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for ema in (ours, torchs):
        ema.update_parameters(model)  # the first update copies
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ours.update_parameters(model)
        with pytest.raises(RuntimeError, match="synchroniz"):
            torchs.update_parameters(model)
    finally:
        torch.cuda.set_sync_debug_mode("default")
