"""White-box attacks on a classifier of pixels in [0, 1]: FGSM, PGD (L-inf) and Carlini-Wagner L2.

Every attack takes ``logits_fn``, a callable from a batch of images in [0, 1] to class logits,
differentiable in its input (``Objective.logits``), and differentiates exactly what that callable
computes: the normalisation inside the model, a straight-through rounding (whose backward is the
identity, so the attack on a quantised latent is BPDA, Athalye, Carlini and Wagner, ICML 2018),
or a stochastic encoder. For a stochastic ``logits_fn`` every gradient is the mean of the
gradients of ``eot_samples`` independent calls (Expectation over Transformation, the same
paper), and every decision "is this example classified correctly?" is the argmax of the softmax
averaged over ``eot_samples`` calls; with ``eot_samples=1`` both reduce to one call.

Robustness convention (docs/robustness.md): an example is robust to FGSM or PGD when the
decision on the clean input is correct and the decision on the point the attack chose is correct.
FGSM chooses ``x_adv``. PGD-k chooses the latest of its iterates ``x_0 .. x_k`` (``x_0`` the
random start) that its own decision misclassified, or ``x_k`` if none was, and the decision on
the chosen point is a fresh one. For a deterministic model the fresh decision repeats the
attack's, so this is exactly the worst case over iterates: broken at k when ``x`` or any of
``x_0 .. x_k`` is misclassified. Robust accuracy then never rises with k, never exceeds clean
accuracy, and a broken example can be dropped from the attack without changing any result
(../shared/NOTES.md, Numerics). For a stochastic model the fresh decision keeps the luck of the
draws that made the choice out of the result, and no example is dropped. CW-L2 reports the
smallest norm among its iterates that its own decision misclassified.

All attacks are untargeted, keep every pixel in [0, 1], process ``batch_size`` examples at a time,
and make no host synchronisation inside their step loops except the few compactions of PGD.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

LogitsFn = Callable[[Tensor], Tensor]

BATCH_SIZE = 500  # examples attacked at once; bounds the memory of one forward + backward


def input_gradient(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, eot_samples: int = 1) -> Tensor:
    """Gradient in ``x`` of the cross-entropy summed over the batch, averaged over calls.

    The mean over ``eot_samples`` calls of ``logits_fn`` of d/dx sum_n CE(logits_fn(x)_n, y_n):
    each example's gradient does not depend on the rest of the batch (sum, not mean).
    """
    return _gradient_and_probs(logits_fn, x, y, eot_samples)[0]


@torch.no_grad()
def predict_probs(logits_fn: LogitsFn, x: Tensor, *, eot_samples: int = 1) -> Tensor:
    """The softmax averaged over ``eot_samples`` calls, shape ``(len(x), num_classes)``."""
    samples = _check_samples(eot_samples)
    return sum(F.softmax(logits_fn(x).float(), dim=-1) for _ in range(samples)) / samples


def predict(logits_fn: LogitsFn, x: Tensor, *, eot_samples: int = 1) -> Tensor:
    """Predicted labels: argmax of the softmax averaged over ``eot_samples`` calls."""
    return predict_probs(logits_fn, x, eot_samples=eot_samples).argmax(dim=-1)


def fgsm(logits_fn: LogitsFn, x: Tensor, y: Tensor, epsilon: float, *, eot_samples: int = 1,
         batch_size: int = BATCH_SIZE) -> Tensor:
    """Fast gradient sign method (Goodfellow, Shlens and Szegedy, ICLR 2015).

    ``x_adv = clip(x + epsilon * sign(grad), 0, 1)`` with ``grad`` from :func:`input_gradient`.

    Returns:
        The adversarial images, the shape of ``x``.
    """
    _check_epsilon(epsilon, "epsilon")
    chunks = [fgsm_step(xb, input_gradient(logits_fn, xb, yb, eot_samples=eot_samples), epsilon)
              for xb, yb in _chunks(x, y, batch_size)]
    return torch.cat(chunks) if chunks else x.detach().clone()


def fgsm_step(x: Tensor, gradient: Tensor, epsilon: float) -> Tensor:
    """One signed step of size ``epsilon``, clipped to [0, 1]; a zero gradient does not move."""
    return (x.detach() + epsilon * gradient.sign()).clamp(0.0, 1.0)


def fgsm_robust(logits_fn: LogitsFn, x: Tensor, y: Tensor, epsilons: Sequence[float], *,
                eot_samples: int = 1, batch_size: int = BATCH_SIZE) -> dict[float, Tensor]:
    """For each epsilon, which examples survive FGSM (correct on ``x`` and on ``x_adv``).

    The gradient at ``x`` is the same for every epsilon, so it is computed once per batch; the
    calls that give it also give the clean decision.
    """
    for epsilon in epsilons:
        _check_epsilon(epsilon, "epsilon")
    parts: dict[float, list[Tensor]] = {float(e): [] for e in epsilons}
    for xb, yb in _chunks(x, y, batch_size):
        gradient, probs = _gradient_and_probs(logits_fn, xb, yb, eot_samples)
        clean_correct = probs.argmax(dim=-1) == yb
        for epsilon in parts:
            adversarial = fgsm_step(xb, gradient, epsilon)
            parts[epsilon].append(clean_correct & (predict(logits_fn, adversarial, eot_samples=eot_samples) == yb))
    return {e: torch.cat(p) if p else torch.zeros(0, dtype=torch.bool, device=x.device) for e, p in parts.items()}


def pgd(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, epsilon: float, step: float, steps: Sequence[int],
        generator: torch.Generator | None, eot_samples: int = 1, random_start: bool = True,
        batch_size: int = BATCH_SIZE, drop_settled: bool = True) -> dict[int, Tensor]:
    """Projected gradient descent in the L-inf ball (Madry et al., ICLR 2018), one run for all step counts.

    ``x_0 = clip(x + U(-epsilon, epsilon), 0, 1)`` (or ``x`` without random start), then
    ``x_{t+1} = x + clip(clip(x_t + step * sign(grad_t), 0, 1) - x, -epsilon, epsilon)``, the update
    order of the adversarial-robustness-toolbox. PGD-k with the same start and step is the prefix
    of PGD-max(steps), so one run of ``max(steps)`` steps answers every requested ``k``.

    Robust at ``k``: the clean decision and a fresh decision on the chosen point are correct (see
    the module docstring; for a deterministic model, correct at ``x`` and at every iterate up to
    ``k``). A model whose two calls on the same 8 inputs agree bit for bit is taken as
    deterministic: its broken examples are dropped from the batch before steps 1, 2, 4, 8, ...
    (log2(max(steps)) host synchronisations). Otherwise only clean-misclassified ones are.

    Args:
        generator: draws the random start (on its own device); ``None`` only with ``random_start=False``.
        drop_settled: ``False`` attacks every example at every step, settled or not (same results;
            the baseline that ``python -m benchmarks evaluation`` times the dropping against).

    Returns:
        For each requested step count, a bool tensor of shape ``(len(x),)``: robust at that step.
    """
    _check_epsilon(epsilon, "epsilon")
    if not step > 0:
        raise ValueError(f"pgd: step must be > 0, got {step!r}")
    steps = list(steps)
    if not steps or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in steps):
        raise ValueError(f"pgd: steps must be a non-empty list of ints >= 1, got {steps!r}")
    wanted = sorted(set(steps))
    if random_start and generator is None:
        raise ValueError("pgd: random_start needs a torch.Generator")
    parts: dict[int, list[Tensor]] = {k: [] for k in wanted}
    for xb, yb in _chunks(x, y, batch_size):
        for k, robust in _pgd_batch(logits_fn, xb, yb, epsilon, step, wanted, generator, eot_samples,
                                    random_start, drop_settled).items():
            parts[k].append(robust)
    return {k: torch.cat(p) if p else torch.zeros(0, dtype=torch.bool, device=x.device) for k, p in parts.items()}


def _pgd_batch(logits_fn, x, y, epsilon, step, wanted, generator, eot_samples, random_start,
               drop_settled) -> dict[int, Tensor]:
    x = x.detach()
    last = wanted[-1]
    with torch.no_grad():  # two calls that agree bit for bit: a deterministic model (one sync)
        deterministic = torch.equal(logits_fn(x[:8]), logits_fn(x[:8]))
    clean_correct = predict(logits_fn, x, eot_samples=eot_samples) == y
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        start = (x + (2 * noise - 1) * epsilon).clamp(0.0, 1.0)
    else:
        start = x.clone()
    # per example, the iterate the attack rates most adversarial so far: misclassified by its own
    # decision first, then the smallest margin p_y - max_{i != y} p_i of its mean softmax
    chosen, score = start.clone(), torch.full((len(y),), float("inf"), device=x.device)
    active = torch.arange(len(y), device=y.device)  # positions in the batch still attacked
    origin, labels, current = x, y, start
    snapshots: dict[int, Tensor] = {}
    for t in range(last + 1):
        if t < last:
            gradient, probs = _gradient_and_probs(logits_fn, current, labels, eot_samples)
        else:
            probs = predict_probs(logits_fn, current, eot_samples=eot_samples)
        key = (probs.argmax(dim=-1) == labels).float()  # 0: misclassified by the attack's decision
        better = key <= score[active]  # ties go to the later iterate
        chosen[active] = torch.where(_per_example(better, current), current, chosen[active])
        score[active] = torch.minimum(key, score[active])
        if t in wanted:
            snapshots[t] = chosen.clone()
        if t == last:
            break
        # before steps 1, 2, 4, 8, ...: drop the settled examples (one sync)
        if drop_settled and ((t + 1) & t) == 0:
            # clean-misclassified never count; for a deterministic model a misclassified choice is final
            keep = clean_correct[active] & ((score[active] > 0) if deterministic else True)
            active, origin, labels = active[keep], origin[keep], labels[keep]
            current, gradient = current[keep], gradient[keep]
            if len(active) == 0:
                snapshots.update({k: chosen for k in wanted if k not in snapshots})
                break
        stepped = (current + step * gradient.sign()).clamp(0.0, 1.0)
        current = origin + (stepped - origin).clamp(-epsilon, epsilon)
    # a fresh decision on the chosen point: the attack's own for a deterministic model, and free
    # of the luck of the samples that chose it for a stochastic one
    return {k: clean_correct & (predict(logits_fn, snapshots[k], eot_samples=eot_samples) == y) for k in wanted}


def _per_example(mask: Tensor, like: Tensor) -> Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


def cw_l2(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, c: float, steps: int, lr: float, eot_samples: int = 1,
          batch_size: int = BATCH_SIZE) -> Tensor:
    """Carlini-Wagner L2 attack (IEEE S&P 2017), untargeted, confidence 0, one fixed ``c``.

    ``x_adv = (tanh(w) + 1) / 2`` stays in [0, 1]; Adam(lr) on ``w`` from ``atanh(2x - 1)`` minimises
    ``||x_adv - x||_2^2 + c * max(Z_y - max_{i != y} Z_i, 0)`` (the margin term's gradient averaged
    over ``eot_samples`` calls). The smallest norm among iterates that the decision from the same calls
    misclassifies is kept (for a stochastic model this errs towards small norms, i.e. against
    robustness; docs/robustness.md gives the measured size). There is no binary search over
    ``c``: where a search would raise a ``c`` too small to cross the boundary, this attack fails
    (inf). For a deterministic model every finite norm is that of a misclassified point, so it is
    an upper bound on the example's minimal adversarial L2 distance.

    Returns:
        Per example, the L2 norm of the smallest misclassifying perturbation found: 0 where ``x``
        itself is misclassified, ``inf`` where none was found.
    """
    if not (c > 0 and lr > 0) or isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"cw_l2: need c > 0, lr > 0 and steps an int >= 1, got c={c!r}, lr={lr!r}, steps={steps!r}")
    parts = [_cw_batch(logits_fn, xb, yb, c, int(steps), lr, eot_samples) for xb, yb in _chunks(x, y, batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, device=x.device)


def _cw_batch(logits_fn, x, y, c, steps, lr, eot_samples) -> Tensor:
    x = x.detach()
    samples = _check_samples(eot_samples)
    inf = torch.tensor(float("inf"), device=x.device)
    best = torch.where(predict(logits_fn, x, eot_samples=samples) == y, inf, torch.zeros((), device=x.device))
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    for t in range(steps + 1):
        # the iterate's decision comes from the same calls whose gradients make the next step
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            adversarial = (torch.tanh(w) + 1) / 2
            norm = (adversarial - x).flatten(1).norm(dim=1)
            if t < steps:
                norm.square().sum().backward()
            probs = torch.zeros((), device=x.device)
            for _ in range(samples):  # EOT: w.grad accumulates the mean of the calls' gradients
                logits = logits_fn((torch.tanh(w) + 1) / 2).float()
                probs = probs + F.softmax(logits.detach(), dim=-1)
                if t < steps and logits.requires_grad:
                    true_logit = logits.gather(1, y[:, None]).squeeze(1)
                    best_other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
                    ((c / samples) * (true_logit - best_other).clamp(min=0).sum()).backward()
        norm = norm.detach()
        best = torch.where((probs.argmax(dim=-1) != y) & (norm < best), norm, best)
        if t < steps:
            optimizer.step()
    return best


def _gradient_and_probs(logits_fn: LogitsFn, x: Tensor, y: Tensor, eot_samples: int) -> tuple[Tensor, Tensor]:
    """EOT: the mean over calls of the input gradient of the summed CE, and of the softmax."""
    samples = _check_samples(eot_samples)
    x = x.detach().requires_grad_(True)
    gradient = torch.zeros_like(x)
    probs = None
    for _ in range(samples):  # one graph at a time bounds memory at one forward + backward
        with torch.enable_grad():
            logits = logits_fn(x).float()
            loss = F.cross_entropy(logits, y, reduction="sum")
        if loss.requires_grad:  # an output cut off from x (e.g. a hard argmax) has zero gradient
            gradient += torch.autograd.grad(loss, x)[0]
        p = F.softmax(logits.detach(), dim=-1)
        probs = p if probs is None else probs + p
    return gradient / samples, probs / samples


def _chunks(x: Tensor, y: Tensor, batch_size: int):
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    for start in range(0, len(x), int(batch_size)):
        yield x[start:start + batch_size], y[start:start + batch_size]


def _check_samples(eot_samples: int) -> int:
    if isinstance(eot_samples, bool) or int(eot_samples) != eot_samples or eot_samples < 1:
        raise ValueError(f"eot_samples must be an int >= 1, got {eot_samples!r}")
    return int(eot_samples)


def _check_epsilon(epsilon: float, name: str) -> None:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {epsilon!r}")
