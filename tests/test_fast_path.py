"""The training step's fast path (bf16, channels_last, compile), the sync-free entropy bottleneck,
and the per-trial memory estimate. CUDA-only checks are skipped without a GPU; the same logic
runs on the CPU in the other tests (bf16 autocast exists there too)."""

from __future__ import annotations

import math

import pytest
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn
from torch.overrides import TorchFunctionMode

from search_spaces import get_sweep
from trainables.config import DeviceConfig
from trainables.data import DATASET_SIZES, load_dataset
from trainables.entropy_models import SyncFreeEntropyBottleneck, build_entropy_model
from trainables.fast_path import FastPath
from trainables.harness import build_training, train_epoch
from trainables.memory import _saved_bytes, estimate_trial_memory
from trainables.objectives import build_objective, objective_names

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CONV = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
MLP = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))


@pytest.mark.parametrize("precision,layout,compiled,device,model,expected", [
    ("auto", "auto", "off", "cuda", CONV, (torch.bfloat16, True, False, False)),
    ("auto", "auto", "on", "cpu", CONV, (None, False, True, False)),
    ("auto", "auto", "cudagraphs", "cuda", MLP, (None, False, True, True)),  # no convolution: fp32, never NHWC
    ("bf16", "auto", "off", "cuda", MLP, (torch.bfloat16, False, False, False)),
    ("bf16", "on", "on", "cpu", CONV, (torch.bfloat16, True, True, False)),
    ("fp32", "off", "off", "cuda", CONV, (None, False, False, False)),
    ("fp32", "on", "cudagraphs", "cuda", MLP, (None, False, True, True)),
])
def test_fast_path_resolves_auto_by_device_and_model(precision, layout, compiled, device, model, expected):
    choices = DeviceConfig(precision=precision, channels_last=layout, compile=compiled)
    fast = FastPath.for_model(choices, torch.device(device), model)
    assert (fast.autocast_dtype, fast.channels_last, fast.compile, fast.cudagraphs) == expected


@pytest.mark.parametrize("key,value", [("precision", "fp16"), ("channels_last", True), ("compile", True), ("compile", "auto")])
def test_device_keys_reject_unknown_values_by_name(key, value):
    with pytest.raises(ValueError, match=f"{key}={value!r}: expected"):
        DeviceConfig.from_mapping({key: value})


def _digits_config(objective: str, **overrides):
    spec = get_sweep(f"{objective}_digits").with_overrides(smoke=True)
    return {**spec.trial_configs()[0], "train_subset": 256, "test_subset": 100, **overrides}


@pytest.mark.parametrize("objective", objective_names())
def test_every_objective_trains_under_bf16_autocast_on_the_cpu(objective, one_thread_per_module):
    config = _digits_config(objective, precision="bf16", channels_last="on")
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=256, test_subset=100, seed=0)
    torch.manual_seed(0)
    model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, torch.device("cpu"))
    dtypes = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    model.start_epoch(1)
    terms = train_epoch(model, optimizer, aux_optimizer, ema, data, config, torch.Generator().manual_seed(0), 1, fast)
    assert torch.bfloat16 in dtypes  # autocast really ran the layers in bf16
    assert all(math.isfinite(v) for v in terms.values()), terms
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_computes_the_same_epoch_as_the_default_layout(one_thread_per_module):
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=256, test_subset=100, seed=0)
    results = []
    for layout in ("off", "on"):
        config = _digits_config("dib", precision="fp32", channels_last=layout)
        torch.manual_seed(0)
        model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, torch.device("cpu"))
        model.start_epoch(2)
        results.append(train_epoch(model, optimizer, aux_optimizer, ema, data, config,
                                   torch.Generator().manual_seed(0), 2, fast))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-4, abs=1e-5), key


@pytest.fixture
def eager_random():
    """Inductor draws random numbers as eager does (VIB samples z; DIB's entropy model adds noise).
    ``config.patch``: pytest's monkeypatch deletes a torch config key when it undoes the patch,
    which broke every later compile in the session."""
    import torch._inductor.config

    with torch._inductor.config.patch(fallback_random=True):
        yield


def test_compiled_forward_matches_eager(one_thread_per_module, eager_random):
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=128, test_subset=100, seed=0)
    results = []
    for compiled in ("off", "on", "cudagraphs"):  # on the CPU, cudagraphs runs its reduce-overhead compile without graphs
        config = _digits_config("vib", precision="fp32", compile=compiled, batch_size=64, latent_dim=16)
        torch.manual_seed(0)
        model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, torch.device("cpu"))
        results.append(train_epoch(model, optimizer, aux_optimizer, ema, data, config,
                                   torch.Generator().manual_seed(0), 1, fast))
        assert sorted(model.state_dict()) == sorted(build_objective(config, (1, 8, 8), 10).state_dict())
    for compiled in results[1:]:
        for key in results[0]:
            assert compiled[key] == pytest.approx(results[0][key], rel=1e-3, abs=1e-5), key


# Per objective: a batch size that leaves a shorter last batch of the 256 training digits (knn_ib's
# class-balanced batches are all full), the warm-up's end inside the run where there is one, and
# infomax's NWJ bound (its off-diagonal mean once took a data-dependent shape). Any other objective
# runs with DEFAULT_COMPILE_RUN.
DEFAULT_COMPILE_RUN = {"batch_size": 96}
COMPILE_RUNS = {"dib": {"batch_size": 96, "warmup_epochs": 1}, "simclr_dib": {"batch_size": 96, "warmup_epochs": 1},
                "knn_ib": {}, "vib": {"batch_size": 96, "ema_decay": 0.9},
                "infomax": {"batch_size": 96, "eval_batch_size": 128, "test_subset": 256, "estimator": "nwj"}}


def compile_run(objective: str) -> dict:
    return COMPILE_RUNS.get(objective, DEFAULT_COMPILE_RUN)


def two_epochs(objective: str, compiled: str, device: torch.device, **overrides) -> list[dict[str, float]]:
    """The terms of two training epochs of ``objective`` on 256 digits, from seed 0, with the
    batch sizes of :func:`compile_run` (a shorter last batch: a second graph) and the DIB
    objectives' warm-up ending after epoch 1; epoch 2's terms depend on the weights epoch 1 left."""
    data = load_dataset("digits", data_dir=".", device=device, train_subset=256, test_subset=100, seed=0)
    config = _digits_config(objective, compile=compiled, **{**compile_run(objective), **overrides})
    torch.manual_seed(0)
    model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, device)
    if fast.cudagraphs != (compiled == "cudagraphs"):
        raise RuntimeError(f"compile={compiled!r} resolved to cudagraphs={fast.cudagraphs}")
    generator = torch.Generator(device=device).manual_seed(0)
    epochs = []
    for epoch in (1, 2):
        model.start_epoch(epoch)
        epochs.append(train_epoch(model, optimizer, aux_optimizer, ema, data, config, generator, epoch, fast))
    return epochs


# fp32 for every objective; and the path conv nets take on CUDA by default (bf16 autocast,
# channels_last), where inductor's fused kernels round differently from eager's op-by-op bf16.
# On the CPU only the fp32 paths: there `auto` resolves to fp32 (bf16 + channels_last is opt-in,
# its eager path is tested above, and compiling it for the CPU is slow); on CUDA, where those
# paths are the default, every path is compiled.
GRAPHED_PATHS = [(name, "fp32", "off", 1e-3) for name in objective_names()] + [
    (name, "bf16", "on", 2e-2) for name in ("dib", "simclr_dib", "knn_ib", "hybrid")]
CPU_GRAPHED_PATHS = [path for path in GRAPHED_PATHS if path[1] == "fp32"]


def assert_compiled_epochs_match_eager(objective: str, precision: str, layout: str, rel: float,
                                       device: torch.device) -> None:
    eager, graphed = (two_epochs(objective, compiled, device, precision=precision, channels_last=layout)
                      for compiled in ("off", "cudagraphs"))
    for eager_epoch, graphed_epoch in zip(eager, graphed):
        assert graphed_epoch.keys() == eager_epoch.keys()
        for key in eager_epoch:
            assert graphed_epoch[key] == pytest.approx(eager_epoch[key], rel=rel, abs=1e-5), key


@pytest.mark.parametrize("objective,precision,layout,rel", CPU_GRAPHED_PATHS)
def test_compiled_step_trains_the_same_epochs_as_eager(objective, precision, layout, rel, eager_random,
                                                       one_thread_per_module):
    """Every objective's training step compiled by inductor (compile=cudagraphs: on the CPU, the
    reduce-overhead compile without graphs) gives eager's terms over two epochs. With a cold
    inductor cache they build about 3 min of C++ on two cores in all (CI's fresh clone)."""
    assert_compiled_epochs_match_eager(objective, precision, layout, rel, torch.device("cpu"))


@CUDA
@pytest.mark.parametrize("objective,precision,layout,rel", GRAPHED_PATHS)
def test_cudagraphs_trains_the_same_epochs_as_eager_on_cuda(objective, precision, layout, rel, eager_random):
    """On CUDA, compile=cudagraphs replays the compiled step as CUDA graphs, which reuse their
    output buffers and read parameters, buffers (the DIB warm-up weight, MoCo's queue) and inputs
    from fixed addresses: every objective's two epochs must still give eager's terms. Random
    draws inside the step (DIB's noise, VIB's samples) follow eager's (``eager_random``)."""
    assert_compiled_epochs_match_eager(objective, precision, layout, rel, torch.device("cuda"))


@pytest.fixture
def counted_compile(monkeypatch):
    """``torch.compile`` with a frame-counting aot_eager backend instead of inductor, on a fresh
    dynamo. Dynamo alone decides graph breaks and guards, so recompiles are the same as under
    inductor, without its C++ builds (minutes for a conv net on two cores)."""
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    counter = CompileCounterWithBackend("aot_eager")
    compile_function = torch.compile
    monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: compile_function(*args, **{**kwargs, "backend": counter}))
    yield counter
    torch._dynamo.reset()


@pytest.mark.parametrize("objective", objective_names())
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_training_compiles_in_the_first_epoch_only(objective, precision, counted_compile, tmp_path,
                                                            one_thread_per_module):
    """A whole trial (run_trial: epochs, per-epoch test pass, probes, information plane, attacks):
    compile=on compiles the training forward in epoch 1 (the full batch and the shorter last
    one) and never again, in one graph each: a per-epoch Python number read in forward (DIB's
    warm-up) recompiled it every epoch, and an ``.item()`` or a data-dependent shape broke it."""
    from torch._dynamo.utils import counters

    from trainables.harness import run_trial

    config = _digits_config(objective, epochs=3, compile="on", precision=precision, checkpoint_every=10,
                            **compile_run(objective))
    frames = []
    run_trial(config, data_dir=str(tmp_path), device=torch.device("cpu"),
              report=lambda metrics, checkpoint: frames.append(counted_compile.frame_count))
    full_batches_only = objective == "knn_ib"
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert frames[0] == (1 if full_batches_only else 2), f"graphs compiled in epoch 1: {frames[0]}"
    assert frames == [frames[0]] * 3, f"recompiled after epoch 1: graphs compiled by each epoch's end {frames}"


def test_a_reused_worker_compiles_every_trial_of_a_sweep(counted_compile, one_thread_per_module):
    """Tune runs a sweep's trials one after another in one worker process (reuse_actors). Trials
    whose steps differ (here VIB's latent size; likewise a temperature, or infomax's critic) each
    compile graphs of their own (the full batch and the shorter last one): every trial's must be
    compiled. Before the reset in ``maybe_compile``, a worker's graphs piled up to dynamo's
    recompile limit of 8 and the fifth trial on trained eagerly."""
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=256, test_subset=100, seed=0)
    compiled = []
    for latent_dim in (2, 4, 8, 16, 32, 64):
        config = _digits_config("vib", compile="on", **{**COMPILE_RUNS["vib"], "latent_dim": latent_dim})
        model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, torch.device("cpu"))
        before = counted_compile.frame_count
        model.start_epoch(1)
        train_epoch(model, optimizer, aux_optimizer, ema, data, config, torch.Generator().manual_seed(0), 1, fast)
        compiled.append(counted_compile.frame_count - before)
    assert compiled == [2] * 6, f"graphs compiled by each trial: {compiled}"


@pytest.mark.parametrize("objective,key,values", [("vib", "beta", (1e-3, 1.0)), ("knn_ib", "beta", (0.0, 0.6)),
                                                  ("hybrid", "alpha", (0.1, 0.9)),
                                                  ("dib", "beta", (0.5, 8.0)), ("simclr_dib", "beta", (0.0, 0.5))])
def test_trials_that_differ_only_in_a_loss_weight_share_one_graph(objective, key, values, counted_compile,
                                                                   one_thread_per_module):
    """The swept loss weights are 0-d buffers (``Objective.register_weight``, DIB's rate weight),
    not Python numbers dynamo would specialise on: the second trial's step runs the first one's
    graph, so inductor's disk cache serves every trial of a beta sweep after the first."""
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=96, test_subset=100, seed=0)
    graphs = []
    for value in values:
        config = _digits_config(objective, precision="fp32", **{"batch_size": 96, "warmup_epochs": 0, key: value})
        model = build_objective(config, data.input_shape, data.num_classes).train()
        model.start_epoch(1)
        step = torch.compile(model.training_step, dynamic=False)
        step(data.train_x, data.train_y)
        graphs.append(counted_compile.frame_count)
    assert graphs == [1, 1], f"graphs compiled after each trial: {graphs}"


def test_compiled_dib_follows_the_warm_up_as_eager_does(one_thread_per_module, eager_random):
    """Inductor's forward reads the rate weight each step, not a value frozen at the first
    compile: epoch 1 (warm-up, CE only) and epoch 2 (CE + beta * rate) agree with eager, from one
    graph (two full batches an epoch). About 15 s of C++ compile on one core with a cold cache."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    data = load_dataset("digits", data_dir=".", device="cpu", train_subset=128, test_subset=100, seed=0)
    results = []
    for compiled in ("off", "on"):
        config = _digits_config("dib", precision="fp32", compile=compiled, batch_size=64, warmup_epochs=1, beta=2.0)
        torch.manual_seed(0)
        model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, torch.device("cpu"))
        generator = torch.Generator().manual_seed(0)
        epochs = []
        for epoch in (1, 2):
            model.start_epoch(epoch)
            epochs.append(train_epoch(model, optimizer, aux_optimizer, ema, data, config, generator, epoch, fast))
        results.append(epochs)
    assert counters["stats"]["unique_graphs"] == 1
    (warm_up, priced), (compiled_warm_up, compiled_priced) = results
    assert warm_up["loss"] == pytest.approx(warm_up["ce"])
    assert priced["loss"] == pytest.approx(priced["ce"] + 2.0 * priced["bits_per_dim"], rel=1e-5)
    for eager, compiled in ((warm_up, compiled_warm_up), (priced, compiled_priced)):
        assert eager.keys() == compiled.keys()
        for key in eager:
            assert compiled[key] == pytest.approx(eager[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("weight", [0.0, 0.05, 2.0])
def test_scale_gradient_by_a_tensor_weight_matches_a_float_weight(dtype, weight):
    """The objectives' per-epoch rate weight is a 0-d tensor (no recompiles); it must scale the
    gradient exactly as the Python float did, also for a bf16 ``h``, and at 0 (the float cuts the
    gradient off, the tensor adds exact zeros to what ``h`` gets by another path)."""
    from trainables.objectives.dib.model import scale_gradient

    h = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    other = torch.randn(64, 8, generator=torch.Generator().manual_seed(1)).to(dtype)
    upstream = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    gradients = []
    for w in (weight, torch.tensor(weight)):
        leaf = h.clone().requires_grad_()
        scaled = scale_gradient(leaf, w)
        assert torch.equal(scaled, h) and scaled.dtype == dtype
        # h also reaches the loss by another path, as h_hat reaches the classifier
        ((scaled.float() * upstream).sum() + (leaf * other).float().sum()).backward()
        gradients.append(leaf.grad)
    assert torch.equal(gradients[0], gradients[1])


# ---- the sync-free entropy bottleneck ------------------------------------------------------

class PermuteArguments(TorchFunctionMode):
    """Records the types of the dimensions every ``permute`` is given."""

    def __init__(self):
        super().__init__()
        self.types: set[type] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "permute":
            dims = args[1:] if len(args) > 2 or not isinstance(args[1], (tuple, list)) else args[1]
            self.types |= {type(d) for d in dims}
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("cls,reads_tensors", [(EntropyBottleneck, True), (SyncFreeEntropyBottleneck, False)])
def test_only_compressais_bottleneck_permutes_by_tensor_elements(cls, reads_tensors):
    """Dims taken from a device tensor are read back to the host one by one: a sync per element on CUDA."""
    with PermuteArguments() as recorded:
        cls(8)(torch.randn(4, 8, 1))
    assert (torch.Tensor in recorded.types) == reads_tensors
    assert reads_tensors or recorded.types == {int}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sync_free_bottleneck_gives_compressais_outputs_and_gradients(mode):
    torch.manual_seed(0)
    stock = EntropyBottleneck(8)
    ours = SyncFreeEntropyBottleneck(8)
    ours.load_state_dict(stock.state_dict())
    outputs = []
    for layer in (stock, ours):
        getattr(layer, mode)()
        torch.manual_seed(1)  # the same x and the same training noise for both
        x = torch.randn(16, 8, 1, requires_grad=True)
        torch.manual_seed(2)
        y, likelihood = layer(x)
        (-likelihood.log2().sum()).backward()
        outputs.append((y.detach(), likelihood.detach(), x.grad))
    for a, b in zip(*outputs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_aux_loss_is_float32_inside_the_training_steps_autocast(name):
    """The aux loss now runs inside the training step's bf16 autocast; it must not compute in bf16."""
    model = build_entropy_model(name, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.aux_loss()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(model.aux_loss().item(), rel=1e-6)


def test_entropy_models_use_the_sync_free_bottleneck():
    for name in ("factorized", "hyperprior"):
        layers = [m for m in build_entropy_model(name, 8).modules() if isinstance(m, EntropyBottleneck)]
        assert layers and all(type(m) is SyncFreeEntropyBottleneck for m in layers)


@CUDA
def test_sync_free_bottleneck_never_syncs_on_cuda_and_compressais_does():
    x = torch.randn(64, 32, 1, device="cuda", requires_grad=True)
    ours, stock = SyncFreeEntropyBottleneck(32).cuda(), EntropyBottleneck(32).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _, likelihood = ours(x)
        likelihood.log().sum().backward()
        with pytest.raises(RuntimeError, match="synchroniz"):
            stock(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@CUDA
@pytest.mark.parametrize("objective", ["dib", "simclr_dib", "vib"])
def test_a_training_epoch_on_cuda_makes_no_host_sync_per_step(objective):
    """The only syncs of an epoch are the once-an-epoch read of the metrics (and the batch split)."""
    import warnings

    config = _digits_config(objective, precision="auto", channels_last="auto")
    data = load_dataset("digits", data_dir=".", device="cuda", train_subset=1024, test_subset=100, seed=0)
    torch.manual_seed(0)
    model, optimizer, aux_optimizer, _, ema, fast = build_training(config, data, torch.device("cuda"))
    generator = torch.Generator(device="cuda").manual_seed(0)
    model.start_epoch(1)
    train_epoch(model, optimizer, aux_optimizer, ema, data, config, generator, 1, fast)  # warm-up
    steps = 1024 // int(config["batch_size"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_epoch(model, optimizer, aux_optimizer, ema, data, config, generator, 2, fast)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    assert fast.autocast_dtype == (torch.bfloat16 if objective != "vib" else None)
    assert syncs < steps, f"{syncs} host syncs in an epoch of {steps} steps"


# ---- the memory estimate -------------------------------------------------------------------

class Toy(nn.Module):
    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.net = nn.Sequential(*layers)

    def forward(self, x, y):
        return {"loss": self.net(x.flatten(1)).sum()}


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_saved_activations_match_the_closed_form(device):
    batch = 32
    # Linear(64, 16) saves its input (B x 64); ReLU saves its output (B x 16), which the second
    # Linear saves again as its input: counted once. Weights are parameters, never counted.
    one = Toy(nn.Linear(64, 16))
    two = Toy(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    assert _saved_bytes(one.to(device), (1, 8, 8), 10, batch, device) == batch * 64 * 4
    assert _saved_bytes(two.to(device), (1, 8, 8), 10, batch, device) == batch * (64 + 16) * 4


def test_memory_estimate_data_and_state_match_the_closed_form():
    config = get_sweep("vib_mnist").trial_configs()[0]
    estimate = estimate_trial_memory(config)
    shape, train, test, classes = DATASET_SIZES["mnist"]
    assert estimate.data_bytes == (train + test) * (math.prod(shape) * 4 + 8)
    model = build_objective(config, shape, classes)
    params = sum(p.numel() for p in model.parameters()) * 4
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    ema = params + buffers if config["ema_decay"] > 0 else 0
    assert estimate.state_bytes == 4 * params + buffers + ema  # weights, gradients, two Adam moments
    assert estimate.traced_on == "meta"
    assert estimate.activation_bytes > int(config["batch_size"]) * 784 * 4  # at least the input batch


def test_memory_estimate_scales_with_batch_and_subsets():
    base = {**get_sweep("dib_cifar").trial_configs()[0]}
    small = estimate_trial_memory({**base, "batch_size": 64, "train_subset": 1000, "test_subset": 100})
    large = estimate_trial_memory({**base, "batch_size": 128, "train_subset": 1000, "test_subset": 100})
    assert large.activation_bytes == pytest.approx(2 * small.activation_bytes, rel=0.01)
    assert small.data_bytes == 1100 * (3 * 32 * 32 * 4 + 8)
    assert small.state_bytes == large.state_bytes


def test_memory_estimate_falls_back_to_a_small_cpu_forward(monkeypatch):
    """An objective whose forward needs real values cannot run on meta; a CPU forward is scaled."""
    import trainables.objectives as registry

    class NeedsValues(Toy):
        def forward(self, x, y):
            bool(x.sum() > 0)  # reads a value, as a data-dependent branch would: meta tensors have none
            return super().forward(x, y)

    monkeypatch.setattr(registry, "build_objective", lambda config, shape, classes: NeedsValues(nn.Linear(64, 16)))
    config = {**get_sweep("vib_digits").trial_configs()[0], "batch_size": 64}
    estimate = estimate_trial_memory(config)
    assert estimate.traced_on == "cpu (batch 16, scaled to 64)"
    assert estimate.activation_bytes == 64 * 64 * 4
