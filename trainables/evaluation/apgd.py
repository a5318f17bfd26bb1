"""Auto-PGD (Croce and Hein, ICML 2020): APGD-CE and APGD-T (targeted DLR), in the L-inf or L2 ball.

APGD is PGD whose step size tunes itself, the two gradient attacks of AutoAttack. One run of
``steps`` iterations (Croce and Hein 2020, Algorithm 1; reference code: ``autoattack/autopgd_base.py``
of github.com/fra31/auto-attack):

* ``x^(0)``: a random point at distance ``epsilon`` from ``x`` (``U(-1, 1)^d`` scaled to L-inf norm
  ``epsilon``, or ``N(0, I)`` scaled to L2 norm ``epsilon``), clipped to [0, 1].
* ``z = P(x^(k) + eta * s(grad_k))``, ``x^(k+1) = P(x^(k) + a (z - x^(k)) + (1 - a)(x^(k) - x^(k-1)))``
  with ``s`` the sign (L-inf) or the L2-normalised gradient, ``P`` the projection onto the ball
  then the box, momentum ``a = 0.75`` (``a = 1`` at the first step) and ``eta = 2 epsilon`` at first.
* Checkpoints ``w_j = ceil(p_j * steps)``, ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``. At ``w_j`` the example's ``eta`` is halved
  when (1) fewer than ``rho`` of the ``w_j - w_{j-1}`` steps since ``w_{j-1}`` raised the loss over
  the previous iterate, or (2) neither ``eta`` nor the best loss changed since ``w_{j-1}``; a halved
  example restarts from its best point (highest loss so far) and that point's gradient.

Losses (per example, ``z`` the logits, ``pi_k`` the index of the k-th largest): ``"ce"`` is the
untargeted cross-entropy; ``"dlr"`` is the targeted DLR loss
``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, run once per target ``t`` among the ``targets``
largest non-true logits at ``x`` (AutoAttack's standard APGD-T: 9 targets x 100 steps); it needs at
least 4 classes.

Where the reference code and the paper differ, this follows the paper: the first window compares
``f(x^(1))`` with ``f(x^(0))`` (the reference, with 0), condition (1) is a strict ``< rho``
(the reference: ``<=``; they differ only when ``rho`` times a window is an integer, as for the
16-step window of 100 steps), condition (2) may fire at the first checkpoint (never in the
reference), and after a restart the next step's loss is compared with the best point's (the
reference: with the iterate it replaced). Checkpoints equal the reference's at 100 steps.

It differentiates what ``logits_fn`` computes, through a straight-through rounding or, for a
stochastic model, by EOT over ``eot_samples`` calls (trainables.evaluation.attacks), and reads the
loss as the mean over the same calls. The robustness convention is that of ``pgd``: robust when
the clean decision is correct and a fresh decision on the chosen point is correct; the chosen
point is the latest iterate (over all runs) that the attack's own decision misclassified, else the
highest-loss one. For a deterministic model (two calls on 8 inputs agree bit for bit) only
clean-correct examples are attacked, broken ones leave a run before steps 1, 2, 4, 8, ... and each
next target of APGD-T runs only on the examples still robust (one host synchronisation each); a
stochastic model's clean-correct examples are all attacked by every run and judged afresh.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from trainables.evaluation.attacks import (BATCH_SIZE, LogitsFn, _check_epsilon, _check_samples, _chunks,
                                           _gradient_and_probs, cross_entropy_per_example, predict)

NORMS = ("linf", "l2")
LOSSES = ("ce", "dlr")
INITIAL_STEP = 2.0  # eta^(0) in units of epsilon (the paper's 2 epsilon)
MOMENTUM = 0.75  # weight of the new step against the last move (the paper's alpha)
TINY = 1e-12  # keeps the reference's normalisations and the DLR denominator finite at 0


def apgd(logits_fn: LogitsFn, x: Tensor, y: Tensor, *, epsilon: float, norm: str = "linf", loss: str = "ce",
         steps: int = 100, targets: int = 9, generator: torch.Generator, eot_samples: int = 1, rho: float = 0.75,
         batch_size: int = BATCH_SIZE) -> Tensor:
    """APGD-CE (``loss="ce"``) or APGD-T (``loss="dlr"``) in the ``norm`` ball of radius ``epsilon``.

    See the module docstring for the algorithm and the convention.

    Args:
        logits_fn: images in [0, 1] -> logits ``(batch, classes)``, differentiable in its input.
        x, y: images in [0, 1] and their int64 labels.
        epsilon: the radius of the ball, in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"`` (untargeted cross-entropy) or ``"dlr"`` (targeted DLR, one run per target).
        steps: iterations per run (AutoAttack: 100).
        targets: APGD-T's number of target classes, capped at ``classes - 1`` (AutoAttack: 9);
            ignored for ``"ce"``.
        generator: draws the random starts (on its own device).
        eot_samples: calls of ``logits_fn`` averaged per gradient, loss and decision.
        rho: the fraction of loss-raising steps below which the step size is halved (0.75).

    Returns:
        A bool tensor of shape ``(len(x),)``: correct on ``x`` and on the attack's chosen point.

    Raises:
        ValueError: a bad ``norm``, ``loss``, ``steps``, ``targets``, ``rho``, ``epsilon``,
            ``eot_samples``, ``batch_size`` or ``generator``; ``"dlr"`` on fewer than 4 classes.
    """
    _check_epsilon(epsilon, "epsilon")
    if norm not in NORMS:
        raise ValueError(f"apgd: norm must be one of {NORMS}, got {norm!r}")
    if loss not in LOSSES:
        raise ValueError(f"apgd: loss must be one of {LOSSES}, got {loss!r}")
    for name, value in (("steps", steps), ("targets", targets)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"apgd: {name} must be an int >= 1, got {value!r}")
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho <= 1:
        raise ValueError(f"apgd: rho must be a number in [0, 1], got {rho!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"apgd: generator must be a torch.Generator, got {generator!r}")
    samples = _check_samples(eot_samples)
    parts = [_apgd_batch(logits_fn, xb, yb, float(epsilon), norm, loss, steps, targets, generator, samples,
                         float(rho)) for xb, yb in _chunks(x, y, batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool, device=x.device)


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted difference-of-logits-ratio loss (Croce and Hein 2020, eq. 7), shape ``(batch,)``.

    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``, ``z_pi1 >= z_pi2 >= ...`` the sorted
    logits: invariant to shifting and scaling the logits, and rising as ``z_t`` overtakes ``z_y``.
    """
    top = logits.topk(4, dim=1).values
    margin = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
    return -margin / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + TINY)


def checkpoints(steps: int) -> tuple[int, ...]:
    """The iterations ``w_1 < w_2 < ... <= steps`` after which the step size may be halved.

    ``w_j = ceil(p_j * steps)`` for ``p_j <= 1``, in exact hundredths: ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; duplicates (few steps) are merged.
    """
    fractions, previous = [22], 0  # p_j in hundredths
    while True:
        following = fractions[-1] + max(fractions[-1] - previous - 3, 6)
        if following > 100:
            break
        previous = fractions[-1]
        fractions.append(following)
    return tuple(sorted({-(-p * steps // 100) for p in fractions} - {0}))


def _apgd_batch(logits_fn, x, y, epsilon, norm, loss, steps, targets, generator, samples, rho) -> Tensor:
    x = x.detach()
    with torch.no_grad():  # two calls that agree bit for bit: a deterministic model (one sync)
        deterministic = torch.equal(logits_fn(x[:8]), logits_fn(x[:8]))
    clean_logits, clean_probs = _mean_logits_and_probs(logits_fn, x, samples)
    clean_correct = clean_probs.argmax(dim=-1) == y
    if loss == "ce":
        runs = [y]  # the target is unused by the cross-entropy
    else:
        classes = clean_logits.shape[1]
        if classes < 4:
            raise ValueError(f"apgd: the targeted DLR loss needs at least 4 classes, got {classes}")
        others = clean_logits.masked_fill(F.one_hot(y, classes).bool(), float("-inf"))
        runs = list(others.topk(min(targets, classes - 1), dim=1).indices.T)  # largest non-true logit first
    # over all runs: the chosen point, whether the attack's decision misclassified it, its loss
    chosen = x.clone()
    misclassified = torch.zeros_like(clean_correct)
    chosen_loss = torch.full(y.shape, float("-inf"), device=x.device)
    schedule = checkpoints(steps)
    for target in runs:
        attacked = (clean_correct & ~misclassified) if deterministic else clean_correct
        rows = attacked.nonzero().squeeze(1)  # one sync per run
        if len(rows) == 0:
            break
        point, wrong, value = _apgd_run(logits_fn, x[rows], y[rows], target[rows], epsilon, norm, loss, steps,
                                        generator, samples, rho, schedule, deterministic)
        take = wrong | (~misclassified[rows] & (value > chosen_loss[rows]))
        chosen[rows] = torch.where(_rows(take, point), point, chosen[rows])
        chosen_loss[rows] = torch.where(take, value, chosen_loss[rows])
        misclassified[rows] = misclassified[rows] | wrong
    # a fresh decision: the attack's own for a deterministic model, free of the luck of the
    # samples that chose the point for a stochastic one
    return clean_correct & (predict(logits_fn, chosen, eot_samples=samples) == y)


def _apgd_run(logits_fn, origin, y, target, epsilon, norm, loss, steps, generator, samples, rho, schedule,
              drop_broken) -> tuple[Tensor, Tensor, Tensor]:
    """One run from a random start: per example (chosen point, misclassified by the attack, best loss)."""
    start = _random_start(origin, epsilon, norm, generator)
    gradient, probs, value = _evaluate(logits_fn, start, y, target, loss, samples)
    wrong = probs.argmax(dim=-1) != y
    step = torch.full(y.shape, INITIAL_STEP * epsilon, device=origin.device)
    # per-example state of the examples still attacked; `row` is the position in this run's batch
    s = dict(row=torch.arange(len(y), device=y.device), origin=origin, y=y, target=target, current=start,
             previous=start, gradient=gradient, step=step, best_point=start, best_gradient=gradient,
             best_loss=value, last_loss=value, loss_at_check=value, halved_at_check=torch.zeros_like(wrong),
             increases=torch.zeros_like(step), wrong=wrong, wrong_point=start)
    point, misclassified, best = start.clone(), wrong.clone(), value.clone()  # this run's results

    def write_back(state):  # the chosen point so far of every example in `state`
        chosen = torch.where(_rows(state["wrong"], start), state["wrong_point"], state["best_point"])
        rows = state["row"]
        point[rows], misclassified[rows], best[rows] = chosen, state["wrong"], state["best_loss"]

    last_check = 0
    for k in range(steps):
        # before steps 1, 2, 4, 8, ...: a deterministic model's broken examples leave (one sync)
        if drop_broken and (k & (k + 1)) == 0:
            write_back(s)
            keep = (~s["wrong"]).nonzero().squeeze(1)
            if len(keep) < len(s["row"]):
                s = {name: tensor[keep] for name, tensor in s.items()}
            if len(keep) == 0:
                return point, misclassified, best
        momentum = 1.0 if k == 0 else MOMENTUM
        current, eta = s["current"], _rows(s["step"], s["current"])
        direction = s["gradient"].sign() if norm == "linf" else _unit(s["gradient"], "l2")
        z = _project(current + eta * direction, s["origin"], epsilon, norm)
        moved = _project(current + momentum * (z - current) + (1 - momentum) * (current - s["previous"]),
                         s["origin"], epsilon, norm)
        gradient, probs, value = _evaluate(logits_fn, moved, s["y"], s["target"], loss, samples)
        wrong = probs.argmax(dim=-1) != s["y"]
        better = value > s["best_loss"]
        s.update(previous=current, current=moved, gradient=gradient, last_loss=value,
                 increases=s["increases"] + (value > s["last_loss"]).float(),
                 wrong=s["wrong"] | wrong, wrong_point=torch.where(_rows(wrong, moved), moved, s["wrong_point"]),
                 best_point=torch.where(_rows(better, moved), moved, s["best_point"]),
                 best_gradient=torch.where(_rows(better, moved), gradient, s["best_gradient"]),
                 best_loss=torch.where(better, value, s["best_loss"]))
        if k + 1 in schedule:
            window, last_check = k + 1 - last_check, k + 1
            halve = (s["increases"] < rho * window) | (~s["halved_at_check"] & (s["best_loss"] <= s["loss_at_check"]))
            wide = _rows(halve, moved)
            s.update(step=torch.where(halve, s["step"] / 2, s["step"]),
                     current=torch.where(wide, s["best_point"], moved),  # x^(k+1) <- x_max
                     gradient=torch.where(wide, s["best_gradient"], gradient),
                     last_loss=torch.where(halve, s["best_loss"], value),
                     halved_at_check=halve, loss_at_check=s["best_loss"], increases=torch.zeros_like(value))
    write_back(s)
    return point, misclassified, best


def _evaluate(logits_fn, x, y, target, loss, samples) -> tuple[Tensor, Tensor, Tensor]:
    """At ``x``: the EOT-mean input gradient of the loss, softmax, and per-example loss."""
    values = []

    def recorded(logits, labels):
        value = cross_entropy_per_example(logits, labels) if loss == "ce" else targeted_dlr_loss(logits, labels, target)
        values.append(value.detach())
        return value

    gradient, probs = _gradient_and_probs(logits_fn, x, y, samples, recorded)
    return gradient, probs, torch.stack(values).mean(dim=0)


@torch.no_grad()
def _mean_logits_and_probs(logits_fn, x, samples) -> tuple[Tensor, Tensor]:
    """The logits and softmax averaged over ``samples`` calls (the clean decision is the softmax's argmax)."""
    logits_sum = probs_sum = 0
    for _ in range(samples):
        logits = logits_fn(x).float()
        logits_sum, probs_sum = logits_sum + logits, probs_sum + F.softmax(logits, dim=-1)
    return logits_sum / samples, probs_sum / samples


def _random_start(origin: Tensor, epsilon: float, norm: str, generator: torch.Generator) -> Tensor:
    """``x + epsilon * t / ||t||`` with ``t ~ U(-1, 1)^d`` (L-inf) or ``N(0, I)`` (L2), clipped to [0, 1]."""
    if norm == "linf":
        noise = 2 * torch.rand(origin.shape, generator=generator, device=generator.device) - 1
    else:
        noise = torch.randn(origin.shape, generator=generator, device=generator.device)
    noise = noise.to(device=origin.device, dtype=origin.dtype)
    return (origin + epsilon * _unit(noise, norm)).clamp(0.0, 1.0)


def _project(point: Tensor, origin: Tensor, epsilon: float, norm: str) -> Tensor:
    """Into the ``norm`` ball around ``origin``, then into [0, 1] (the reference's order)."""
    if norm == "linf":
        return torch.minimum(torch.maximum(point, origin - epsilon), origin + epsilon).clamp(0.0, 1.0)
    offset = point - origin
    length = _rows(_norm(offset, "l2"), offset)
    return (origin + offset / (length + TINY) * length.clamp(max=epsilon)).clamp(0.0, 1.0)


def _unit(vector: Tensor, norm: str) -> Tensor:
    return vector / (_rows(_norm(vector, norm), vector) + TINY)


def _norm(vector: Tensor, norm: str) -> Tensor:
    flat = vector.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def _rows(values: Tensor, like: Tensor) -> Tensor:
    """A per-example vector shaped to broadcast over ``like``'s non-batch dimensions."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))
