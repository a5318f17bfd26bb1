"""The hybrid autoencoder + MoCo-v2 bound (Sinha et al.): queue, momentum encoder, loss, checkpoints."""

import re

import pytest
import torch

from trainables.autoencoder import ConvAutoencoder, MoCoQueue, momentum_update
from trainables.config import parse_trial
from trainables.data import load_dataset
from trainables.harness import _optimizers
from trainables.objectives import build_objective
from trainables.objectives.hybrid.model import HybridBound

CONFIG = {"objective": "hybrid", "seed": 0, "epochs": 2, "eval_batch_size": 1000, "ema_decay": 0.0, "lr": 3e-3,
          "adam_beta1": 0.9, "adam_beta2": 0.999, "weight_decay": 1e-4, "aux_lr": 1e-3, "alpha": 0.5,
          "temperature": 0.2, "latent_channels": 2, "hidden_channels": 8, "head_hidden_dim": 32, "projection_dim": 16,
          "queue_size": 64, "momentum": 0.9, "crop_scale_min": 0.5, "jitter_strength": 0.5, "probe_every": 1,
          "interpolation_pairs": 2, "interpolation_steps": 4, "fid_weights": ""}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", data_dir="unused", device="cpu", train_subset=200, test_subset=100)


def make(**overrides) -> HybridBound:
    torch.manual_seed(0)
    return HybridBound(parse_trial({**CONFIG, **overrides}), (1, 8, 8), 10)


# ---- the queue ------------------------------------------------------------------------------

def test_queue_keeps_its_size_and_first_in_first_out_order():
    queue = MoCoQueue(10, 3)
    batches = [torch.full((n, 3), float(i)) + torch.arange(n).view(-1, 1) / 100 for i, n in enumerate((4, 4, 3, 1, 6))]
    seen = []
    for batch in batches:
        queue.enqueue(batch)
        seen.append(batch)
        assert queue.keys.shape == (10, 3) and queue.ordered().shape == (10, 3)
        everything = torch.cat(seen)
        newest = everything[-10:]
        torch.testing.assert_close(queue.ordered()[-len(newest):], newest)  # oldest first, newest last
    assert int(queue.pointer) == sum(len(b) for b in batches) % 10


def test_queue_starts_full_of_unit_keys_and_refuses_bad_batches():
    queue = MoCoQueue(8, 5)
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(8))
    with pytest.raises(ValueError, match=r"1 <= N <= 8, got \(9, 5\)"):
        queue.enqueue(torch.zeros(9, 5))
    with pytest.raises(ValueError, match=r"\(N, 5\) keys .* got \(2, 4\)"):
        queue.enqueue(torch.zeros(2, 4))


def test_queue_and_pointer_are_restored_exactly_by_state_dict():
    queue = MoCoQueue(6, 2)
    queue.enqueue(torch.randn(4, 2))
    restored = MoCoQueue(6, 2)
    restored.load_state_dict(queue.state_dict())
    assert torch.equal(restored.keys, queue.keys) and int(restored.pointer) == 4


def test_momentum_update_moves_the_copy_towards_the_online_network():
    online, copy = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in copy.parameters()]
    momentum_update(online, copy, 0.9)
    for old, new, target in zip(before, copy.parameters(), online.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target)


def test_autoencoder_latent_is_half_resolution_and_odd_channels_are_refused():
    model = ConvAutoencoder(3, 8, 6)
    x = torch.rand(2, 3, 32, 32)
    assert model.encode(x).shape == (2, 6, 16, 16) and model(x).shape == x.shape
    with pytest.raises(ValueError, match="latent_channels must be even .* got 5"):
        ConvAutoencoder(3, 8, 5)


# ---- the objective --------------------------------------------------------------------------

def test_registry_builds_it_and_forward_returns_named_scalar_terms(digits):
    model = build_objective(CONFIG, (1, 8, 8), 10)
    assert isinstance(model, HybridBound) and model.name == "hybrid"
    terms = model(digits.train_x[:16], digits.train_y[:16])
    assert set(terms) == {"loss", "sse", "mse", "info_nce", "contrastive_mi_bits"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(terms["loss"].detach(), 0.5 * terms["sse"] + 0.5 * terms["info_nce"])
    torch.testing.assert_close(terms["mse"], terms["sse"] / 64)


def test_the_momentum_encoder_gets_no_gradient_and_the_optimiser_leaves_it_alone(digits):
    model = make()
    optimizer, _ = _optimizers(model, parse_trial(CONFIG).training)  # the harness's Adam, weight decay 1e-4 included
    keys = [*model.key_encoder.parameters(), *model.key_head.parameters()]
    assert keys and not any(p.requires_grad for p in keys)
    model(digits.train_x[:16], digits.train_y[:16])["loss"].backward()
    assert all(p.grad is None for p in keys)
    assert all(p.grad is not None for p in model.autoencoder.encoder.parameters())
    before = [p.clone() for p in keys]
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, keys))


def test_forward_updates_the_key_encoder_and_the_queue_in_training_only(digits):
    model = make(momentum=0.5)
    x, y = digits.train_x[:16], digits.train_y[:16]
    with torch.no_grad():  # make the key encoder differ from the query encoder first
        for p in model.key_encoder.parameters():
            p.add_(1.0)
    query = [p.clone() for p in model.autoencoder.encoder.parameters()]
    key = [p.clone() for p in model.key_encoder.parameters()]
    model(x, y)
    for q, k, new in zip(query, key, model.key_encoder.parameters()):
        torch.testing.assert_close(new, 0.5 * k + 0.5 * q)
    assert int(model.queue.pointer) == 16
    model.eval()
    frozen, keys_before = [p.clone() for p in model.key_encoder.parameters()], model.queue.keys.clone()
    model(x, y)
    model.evaluate(digits.test_x, digits.test_y)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.key_encoder.parameters()))
    assert torch.equal(model.queue.keys, keys_before) and int(model.queue.pointer) == 16


def test_the_keys_of_a_batch_are_enqueued_after_its_loss(digits):
    """The negatives of a batch are the queue before it: its own keys join the queue only afterwards."""
    import copy

    model = make(queue_size=16)
    replica = copy.deepcopy(model)
    x, y = digits.train_x[:16], digits.train_y[:16]
    torch.manual_seed(4)
    info_nce = model(x, y)["info_nce"]
    momentum_update(replica.autoencoder.encoder, replica.key_encoder, replica.momentum)
    momentum_update(replica.head, replica.key_head, replica.momentum)
    torch.manual_seed(4)
    terms = replica._terms(x, None)  # the same views, against the queue as it was
    torch.testing.assert_close(info_nce, terms["info_nce"].detach())
    torch.testing.assert_close(model.queue.keys, terms["keys"])  # a queue of one batch: replaced whole by its keys


def test_the_loss_falls_over_20_steps(digits):
    torch.set_num_threads(1)
    model = make()
    optimizer, _ = _optimizers(model, parse_trial(CONFIG).training)
    x, y = digits.train_x[:64], digits.train_y[:64]
    torch.manual_seed(0)
    losses = []
    for _ in range(20):
        loss = model(x, y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_a_checkpoint_restores_key_encoder_and_queue_exactly(digits):
    model = make()
    for start in (0, 16, 32):
        model(digits.train_x[start : start + 16], digits.train_y[start : start + 16])
    state = model.state_dict()
    assert {"queue.keys", "queue.pointer"} <= set(state) and any(k.startswith("key_encoder.") for k in state)
    restored = make(seed=0)
    restored.load_state_dict(state)
    x, y = digits.train_x[48:64], digits.train_y[48:64]
    torch.manual_seed(3)
    expected = model(x, y)
    torch.manual_seed(3)
    got = restored(x, y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])
    assert torch.equal(model.queue.keys, restored.queue.keys)


def test_interpolations_start_and_end_at_the_two_images_and_rows_rebuild_them(digits):
    model = make().eval()
    images = model.interpolations(digits.test_x, digits.test_y)
    assert set(images) == {"whole", "first_half", "second_half"}
    assert images["whole"].shape == (2, 4, 1, 8, 8)
    first = torch.stack([torch.nonzero(digits.test_y == c)[0, 0] for c in range(4)])
    decoded = model.autoencoder.decode(model.latent(digits.test_x[first])).clamp(0, 1)
    for mode in images:  # every interpolation starts at image a
        torch.testing.assert_close(images[mode][:, 0], decoded[[0, 2]])
    torch.testing.assert_close(images["whole"][:, -1], decoded[[1, 3]])  # and the whole one ends at image b
    z_a, z_b = model.latent(digits.test_x[first[[0, 2]]]), model.latent(digits.test_x[first[[1, 3]]])
    mixed = torch.cat([z_b[:, :1], z_a[:, 1:]], dim=1)
    torch.testing.assert_close(images["first_half"][:, -1], model.autoencoder.decode(mixed).clamp(0, 1))
    rows = model.interpolation_rows(digits.test_x, digits.test_y)
    assert len(rows) == 5 + 3 * 2 * 4 * 64
    shape = [r["value"] for r in rows if r["metric"] == "grid_shape"]
    assert shape == [2.0, 4.0, 1.0, 8.0, 8.0]
    whole = torch.tensor([r["value"] for r in rows if r["metric"] == "whole"], dtype=torch.float64).view(2, 4, 1, 8, 8)
    torch.testing.assert_close(whole, images["whole"].double(), atol=5e-5, rtol=0)


def test_probes_and_final_evaluations(digits):
    model = make().eval()
    metrics = model.epoch_metrics(digits, 1)
    assert set(metrics) == {"train/acc", "test/acc"} and all(0 <= v <= 1 for v in metrics.values())
    metrics, rows = model.final_evaluations(digits)
    assert set(metrics) == {f"probe/{h}_{s}_acc" for h in ("first_half", "second_half") for s in ("train", "test")}
    assert {r["evaluation"] for r in rows} == {"interpolation"}
    assert make(interpolation_pairs=0).eval().final_evaluations(digits)[1] == []


@pytest.mark.parametrize("key, value, message", [
    ("alpha", 1.5, "hybrid: alpha=1.5: expected a value in [0, 1]"),
    ("momentum", 1.0, "hybrid: momentum=1.0: expected a value in [0, 1)"),
    ("temperature", 0, "hybrid: temperature=0: expected a value > 0"),
    ("latent_channels", 3, "hybrid: latent_channels=3: expected an even number"),
    ("fid_weights", "/weights/pt_inception.pth", "hybrid: fid_weights='/weights/pt_inception.pth': expected empty: FID is "
                                                 "not implemented"),
    ("ema_decay", 0.999, "hybrid: ema_decay=0.999: expected 0: an EMA copy would average MoCo's queue"),
    ("queue_size", 0, "hybrid: queue_size=0: expected a value > 0"),
])
def test_bad_config_values_are_refused_by_the_declaration(key, value, message):
    """The config refuses them when parsed (on the driver and in the trial); the model never re-checks."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_trial({**CONFIG, key: value})
