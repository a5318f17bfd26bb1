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
draws that made the choice out of the result, and no example is dropped. CW-L2 (Carlini and
Wagner, IEEE S&P 2017, run as their reference code runs it: a binary search over the constant
``c``, Adam restarted from ``x`` at each ``c``, early abort) reports, per example, the smallest
norm among all its iterates that its own decision misclassified.

All attacks are untargeted, keep every pixel in [0, 1], process ``batch_size`` examples at a time,
and make no host synchronisation inside their step loops except the few compactions of PGD
and CW's abort-early checks (one every ``steps // 10`` iterations).
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


CW_UPPER_LIMIT = 1e10  # the reference's initial upper bound on c: "no success yet"
CW_SEARCH_LIMIT = 1e9  # below it the upper bound is real and c is bisected; above it c grows x10
CW_TANH_SMOOTHER = 0.999999  # the reference's arctanh((2x - 1) * 0.999999): a finite start at pixels 0 and 1
CW_ABORT_FRACTION = 0.9999  # abort early when the loss fell by less than 0.01% since the last check
ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-8  # TensorFlow's Adam defaults, which the reference used


def cw_l2(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, steps: int, binary_steps: int = 9, initial_c: float = 1e-3,
          lr: float = 0.01, abort_early: bool = True, eot_samples: int = 1, batch_size: int = BATCH_SIZE) -> Tensor:
    """Carlini-Wagner L2 attack (IEEE S&P 2017), untargeted, confidence 0, as its reference code runs it.

    The reference is ``l2_attack.py`` of github.com/carlini/nn_robust_attacks (the paper's code).
    ``x' = (tanh(w) + 1) / 2`` stays in [0, 1]; for a per-example constant ``c``, Adam(lr) on ``w``
    from ``atanh((2x - 1) * 0.999999)`` minimises ``||x' - x||_2^2 + c * max(Z_y(x') - max_{i != y} Z_i(x'), 0)``
    (``Z`` the logits) for at most ``steps`` iterations, aborting early when the loss has not fallen
    by 0.01% over ``steps // 10`` iterations (per example: an example that stalls stops, the rest go
    on; the reference's default batch of one does the same). That is one outer step. After it,
    ``c`` moves by binary search: where the step found an adversarial, ``upper = min(upper, c)``,
    else ``lower = max(lower, c)``; then ``c = (lower + upper) / 2`` once an upper bound is known
    (``upper < 1e9``), else ``c * 10`` after a failure. ``binary_steps`` outer steps run, each from
    the original image with fresh Adam state (as the reference does); with ``binary_steps >= 10``
    the last one uses ``c = upper``, as the reference does. The smallest norm ``||x' - x||_2`` among
    all iterates of all outer steps that the attack's decision misclassifies is kept.

    With ``eot_samples > 1`` the margin term's gradient is the mean over that many calls of
    ``logits_fn`` and the decision is the argmax of the softmax averaged over the same calls
    (for a stochastic model this errs towards small norms, i.e. against robustness). For a
    deterministic model every finite norm is that of a misclassified point: an upper bound on the
    example's minimal adversarial L2 distance.

    Args:
        steps: the most Adam iterations of one outer step (the reference: 10,000).
        binary_steps: outer steps of the search over ``c`` (the reference: 9).
        initial_c: ``c`` of the first outer step (the reference: 1e-3).
        lr: Adam's learning rate on ``w`` (the reference: 0.01).
        abort_early: stop an example's descent when its loss stalls (the reference: True). The
            sweeps run without it (``cw_abort_early``): on a straight-through-rounded model the
            margin term is piecewise constant, the loss stalls between rounding flips, and the
            abort stops descents that are still shrinking the perturbation (docs/robustness.md).

    Returns:
        Per example, the L2 norm of the smallest misclassifying perturbation found: 0 where ``x``
        itself is misclassified, ``inf`` where none was found. Shape ``(len(x),)``.

    Raises:
        ValueError: ``steps`` or ``binary_steps`` not an int >= 1, ``initial_c`` or ``lr`` not a
            finite number > 0, ``eot_samples`` or ``batch_size`` not an int >= 1.
    """
    for name, value in (("steps", steps), ("binary_steps", binary_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"cw_l2: {name} must be an int >= 1, got {value!r}")
    for name, value in (("initial_c", initial_c), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"cw_l2: {name} must be a finite number > 0, got {value!r}")
    samples = _check_samples(eot_samples)
    parts = [_cw_batch(logits_fn, xb, yb, steps, binary_steps, float(initial_c), float(lr), bool(abort_early), samples)
             for xb, yb in _chunks(x, y, batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, device=x.device)


def _cw_batch(logits_fn, x, y, steps, binary_steps, initial_c, lr, abort_early, samples) -> Tensor:
    """The binary search over ``c`` of :func:`cw_l2` on one batch; the descent is :func:`_cw_descend`."""
    x = x.detach()
    inf = torch.tensor(float("inf"), device=x.device)
    best = torch.where(predict(logits_fn, x, eot_samples=samples) == y, inf, torch.zeros((), device=x.device))
    attacked = (best > 0).nonzero().squeeze(1)  # clean-misclassified examples are settled at 0 (one sync)
    if len(attacked) == 0:
        return best
    x, y = x[attacked], y[attacked]
    start = torch.atanh((2 * x - 1) * CW_TANH_SMOOTHER)
    c = torch.full((len(y),), initial_c, device=x.device)
    lower, upper = torch.zeros_like(c), torch.full_like(c, CW_UPPER_LIMIT)
    found = torch.full_like(c, float("inf"))
    for outer in range(binary_steps):
        if binary_steps >= 10 and outer == binary_steps - 1:  # the reference's last, repeated search
            c = upper.clone()
        success = _cw_descend(logits_fn, x, y, start, c, found, steps, lr, abort_early, samples)
        upper = torch.where(success, torch.minimum(upper, c), upper)
        lower = torch.where(success, lower, torch.maximum(lower, c))
        c = torch.where(upper < CW_SEARCH_LIMIT, (lower + upper) / 2, torch.where(success, c, 10 * c))
    best[attacked] = found
    return best


def _cw_descend(logits_fn, x, y, start, c, found, steps, lr, abort_early, samples) -> Tensor:
    """One outer step: Adam from ``start`` (tanh space), fresh state, at most ``steps`` iterations.

    Lowers ``found`` in place to the norm of every iterate its decision misclassifies, and returns
    which examples had one. Iterates ``0 .. steps`` are judged (the last is not stepped from). The
    only host syncs are the abort-early checks, every ``max(1, steps // 10)`` iterations.
    """
    beta1, beta2 = ADAM_BETAS
    success = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    active = torch.arange(len(y), device=y.device)  # positions still descending
    w, moment, second = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    previous = torch.full_like(c, float("inf"))
    check_every = max(1, steps // 10)
    for t in range(steps + 1):
        tanh_w = torch.tanh(w)
        adversarial = (tanh_w + 1) / 2
        delta = adversarial - x
        squared = delta.flatten(1).square().sum(dim=1)
        margin_gradient, probs, margin = _cw_margin(logits_fn, adversarial, y, c, samples, need_gradient=t < steps)
        misclassified = probs.argmax(dim=-1) != y
        norm = squared.sqrt()
        success[active] = success[active] | misclassified
        found[active] = torch.where(misclassified & (norm < found[active]), norm, found[active])
        if t == steps:
            break
        if abort_early and t % check_every == 0:
            loss = squared + c * margin
            if t > 0:  # the reference compares the loss at each check with the last check's (one sync)
                keep = (loss <= previous * CW_ABORT_FRACTION).nonzero().squeeze(1)
                if len(keep) < len(active):
                    if len(keep) == 0:
                        break
                    active, x, y, c, loss = active[keep], x[keep], y[keep], c[keep], loss[keep]
                    w, moment, second = w[keep], moment[keep], second[keep]
                    tanh_w, delta, margin_gradient = tanh_w[keep], delta[keep], margin_gradient[keep]
            previous = loss
        # d/dw of ||x' - x||^2 + c f(x') through x' = (tanh(w) + 1) / 2
        gradient = (2 * delta + margin_gradient) * (1 - tanh_w.square()) / 2
        moment = beta1 * moment + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient.square()
        rate = lr * (1 - beta2 ** (t + 1)) ** 0.5 / (1 - beta1 ** (t + 1))  # TensorFlow's bias correction
        w = w - rate * moment / (second.sqrt() + ADAM_EPSILON)
    return success


def _cw_margin(logits_fn, adversarial, y, c, samples, *, need_gradient) -> tuple[Tensor, Tensor, Tensor]:
    """EOT over ``samples`` calls at ``adversarial``: the mean gradient in it of ``sum_n c_n f_n``,
    the mean softmax, and the mean ``f = max(Z_y - max_{i != y} Z_i, 0)`` per example."""
    point = adversarial.detach().requires_grad_(need_gradient)
    gradient = torch.zeros_like(point)
    probs, margin = 0.0, 0.0
    for _ in range(samples):  # one graph at a time bounds memory at one forward + backward
        with torch.enable_grad():
            logits = logits_fn(point).float()
            true_logit = logits.gather(1, y[:, None]).squeeze(1)
            best_other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
            f = (true_logit - best_other).clamp(min=0)
            weighted = (c * f).sum()
        if need_gradient and weighted.requires_grad:  # an output cut off from the input has no gradient
            part = torch.autograd.grad(weighted, point, allow_unused=True)[0]
            if part is not None:
                gradient += part
        probs = probs + F.softmax(logits.detach(), dim=-1)
        margin = margin + f.detach()
    return gradient / samples, probs / samples, margin / samples


LossFn = Callable[[Tensor, Tensor], Tensor]  # (logits, labels) -> per-example losses, shape (batch,)


def cross_entropy_per_example(logits: Tensor, y: Tensor) -> Tensor:
    """The cross-entropy of each example, shape ``(batch,)``: the loss FGSM and PGD ascend."""
    return F.cross_entropy(logits, y, reduction="none")


def _gradient_and_probs(logits_fn: LogitsFn, x: Tensor, y: Tensor, eot_samples: int,
                        loss_fn: LossFn = cross_entropy_per_example) -> tuple[Tensor, Tensor]:
    """EOT: the mean over calls of the input gradient of the summed per-example loss, and of the softmax.

    The loss is summed over the batch, so each example's gradient is that of its own loss.
    """
    samples = _check_samples(eot_samples)
    x = x.detach().requires_grad_(True)
    gradient = torch.zeros_like(x)
    probs = None
    for _ in range(samples):  # one graph at a time bounds memory at one forward + backward
        with torch.enable_grad():
            logits = logits_fn(x).float()
            loss = loss_fn(logits, y).sum()
        # an output cut off from x (a hard argmax, ``round(h).detach()`` followed by trainable
        # layers, a numpy round trip) has no gradient in x: zero, which the masking checks flag
        if loss.requires_grad:
            part = torch.autograd.grad(loss, x, allow_unused=True)[0]
            if part is not None:
                gradient += part
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
