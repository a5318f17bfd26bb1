"""The robustness suite run once after training: FGSM, PGD, APGD-CE/DLR and CW-L2, robust accuracy as the
worst case over them, and the gradient-masking checks.

``run_evaluations(objective, x, y, attacks, seed)`` attacks ``objective.logits`` on the test subset
``(x, y)`` with the attacks named in ``attacks.evaluations`` (a parsed
:class:`~trainables.config.AttackConfig`) and returns ``(metrics, rows)``:
flat ``robust/*`` floats for Tune and MLflow, and one row per (evaluation, epsilon, steps) for
``evaluations.parquet``. Attacks, conventions, metric names and rows: docs/robustness.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from trainables.config import EVALUATIONS, AttackConfig, lists_read, split_list  # noqa: F401 - EVALUATIONS: the package's API
from trainables.evaluation.apgd import apgd as apgd_attack  # not "apgd": the package attribute is the module
from trainables.evaluation.attacks import cw_l2, fgsm_robust, pgd, predict
from trainables.evaluation.masking import masking_checks
from trainables.evaluation.sanity import uniform_noise_robust, zero_gradient

# The unbounded attack of the masking checks: PGD over the whole [0, 1] box, in steps of a tenth of the
# pixel range, so that any pixel can cross the range in 10 steps.
UNBOUNDED_STEP = 0.1
UNBOUNDED_STEPS = 20
# CW's convergence check: this many times the iterations, on the first this many test examples
CW_CHECK_FACTOR = 3
CW_CHECK_EXAMPLES = 100


def run_evaluations(objective, x: Tensor, y: Tensor, attacks: AttackConfig,
                    seed: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run the attacks named in ``attacks.evaluations`` on ``(x, y)``.

    Args:
        objective: anything with ``logits(x)``, ``eval()``, ``train(mode)`` and ``training``
            (an :class:`~trainables.objectives.base.Objective`). It is put in eval mode for the
            attacks and given back in the mode it had.
        x: test images in [0, 1], already the configured subset, on the model's device.
        y: their int64 labels.
        attacks: the trial's attack settings, each value checked when the config was parsed
            (``eval_subset`` is the caller's: ``x`` is already that subset).
        seed: the trial's seed; every attack that draws at random draws from a generator of its
            own seeded with it, so that adding an attack moves no other's numbers.

    Returns:
        ``(metrics, rows)``; ``({}, [])`` when no evaluation is named.

    Raises:
        ValueError: a list a named attack reads is empty or repeats a value; images outside [0, 1].
    """
    names = split_list(attacks.evaluations)
    if not names:
        return {}, []
    lists = _lists(attacks)
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"evaluations need a non-empty test subset with one label per image, got {len(x)} images "
                         f"and {len(y)} labels")
    if not x.is_floating_point() or bool((x.min() < 0) | (x.max() > 1)):
        raise ValueError("evaluations: attacks need float images with pixels in [0, 1]; normalise inside the model")
    was_training = objective.training
    objective.eval()
    try:
        # the attacks need autograd even when the caller runs under no_grad or inference_mode
        with torch.inference_mode(False), torch.enable_grad():
            x, y = (t.clone() if t.is_inference() else t for t in (x, y))
            return _run(objective.logits, x, y, names, attacks, lists, seed)
    finally:
        objective.train(was_training)


def _run(logits_fn, x: Tensor, y: Tensor, names: list[str], a: AttackConfig, lists: dict[str, list], seed: int):
    n = len(y)
    samples = a.eot_samples
    device = x.device
    accuracies: dict[str, Tensor] = {}  # metric name -> 0-d tensor, read in one host sync at the end
    rows: list[dict[str, Any]] = []  # "value" filled from accuracies at the end

    def record(name: str, value: Tensor, evaluation: str, metric: str, norm: str, epsilon, steps) -> None:
        if name in accuracies:
            raise ValueError(f"evaluations: two strengths give the same metric name {name!r}; "
                             "epsilons must differ in their first 4 significant digits")
        accuracies[name] = value.float()
        rows.append({"evaluation": evaluation, "metric": metric, "norm": norm, "epsilon": epsilon, "steps": steps,
                     "index": None, "value": name})

    def generator() -> torch.Generator:  # each attack draws from its own stream: adding one moves no other
        return torch.Generator(device=device).manual_seed(seed)

    first = predict(logits_fn, x, eot_samples=samples)
    clean_correct = first == y
    correct_count = clean_correct.sum().clamp(min=1)
    # a stochastic model's decisions differ between two evaluations of the same inputs
    flips = (first != predict(logits_fn, x, eot_samples=samples)).sum()
    record("robust/clean_acc", clean_correct.float().mean(), "clean", "acc", "", None, None)
    # per norm and epsilon, the examples that survived every attack run there: robust accuracy
    survivors: dict[tuple[str, float], Tensor] = {}

    def survive(norm: str, epsilon: float, robust: Tensor) -> None:
        key = (norm, float(epsilon))
        survivors[key] = survivors.get(key, clean_correct) & robust

    zero = zero_gradient(logits_fn, x, y, eot_samples=samples)
    record("robust/zero_gradient_fraction", (zero & clean_correct).sum() / correct_count, "zero_gradient",
           "fraction", "", None, None)
    fgsm_names: dict[float, str] = {}
    pgd_names: dict[float, dict[int, str]] = {}
    apgd_names: dict[float, list[str]] = {}
    if "fgsm" in names:
        for epsilon, survived in fgsm_robust(logits_fn, x, y, lists["fgsm_epsilons"], eot_samples=samples).items():
            fgsm_names[epsilon] = f"robust/fgsm_acc_eps{epsilon:.4g}"
            record(fgsm_names[epsilon], survived.float().mean(), "fgsm", "acc", "linf", epsilon, 1)
            survive("linf", epsilon, survived)
    if "pgd" in names:
        for epsilon in lists["pgd_epsilons"]:
            robust = pgd(logits_fn, x, y, epsilon=epsilon, step=a.pgd_step_fraction * epsilon,
                         steps=lists["pgd_steps"], generator=generator(), eot_samples=samples)
            pgd_names[epsilon] = {}
            for steps, survived in robust.items():
                pgd_names[epsilon][steps] = f"robust/pgd{steps}_acc_eps{epsilon:.4g}"
                record(pgd_names[epsilon][steps], survived.float().mean(), "pgd", "acc", "linf", epsilon, steps)
            survive("linf", epsilon, robust[max(robust)])
    for loss in ("ce", "dlr"):
        if f"apgd_{loss}" not in names:
            continue
        radii = [("linf", e) for e in lists["pgd_epsilons"]] if "linf" in lists["apgd_norms"] else []
        radii += [("l2", e) for e in lists["l2_epsilons"]] if "l2" in lists["apgd_norms"] else []
        for norm, epsilon in radii:
            survived = apgd_attack(logits_fn, x, y, epsilon=epsilon, norm=norm, loss=loss, steps=a.apgd_steps,
                                   targets=a.apgd_targets, generator=generator(), eot_samples=samples)
            name = f"robust/apgd_{loss}{'' if norm == 'linf' else '_l2'}_acc_eps{epsilon:.4g}"
            record(name, survived.float().mean(), f"apgd_{loss}", "acc", norm, epsilon, a.apgd_steps)
            survive(norm, epsilon, survived)
            if norm == "linf":
                apgd_names.setdefault(epsilon, []).append(name)
    cw_success = None
    if "cw_l2" in names:
        norms = cw_l2(logits_fn, x, y, steps=a.cw_steps, binary_steps=a.cw_binary_steps,
                      initial_c=a.cw_initial_c, lr=a.cw_lr, abort_early=a.cw_abort_early, eot_samples=samples)
        for epsilon in lists["l2_epsilons"]:
            survived = clean_correct & (norms > epsilon)
            record(f"robust/cw_l2_acc_eps{epsilon:.4g}", survived.float().mean(), "cw_l2", "acc", "l2", epsilon,
                   a.cw_steps)
            survive("l2", epsilon, survived)
        found = clean_correct & torch.isfinite(norms)
        cw_success = found.sum() / correct_count
        record("robust/cw_l2_success_rate", cw_success, "cw_l2", "success_rate", "l2", None, a.cw_steps)
        # the lower median over the clean-correct examples (inf for a failure): the L2 radius at which
        # CW breaks half of them; inf only when CW failed on more than half
        correct_norms = norms[clean_correct]
        median = correct_norms.median() if len(correct_norms) else torch.tensor(float("nan"), device=device)
        record("robust/cw_l2_median_l2", median, "cw_l2", "median_l2", "l2", None, a.cw_steps)
        # convergence (Carlini et al. 2019, 5.2): on the first CW_CHECK_EXAMPLES examples, CW_CHECK_FACTOR
        # times the iterations must not change the robust share at any radius by much
        head = slice(0, min(len(y), CW_CHECK_EXAMPLES))
        longer = cw_l2(logits_fn, x[head], y[head], steps=CW_CHECK_FACTOR * a.cw_steps,
                       binary_steps=a.cw_binary_steps, initial_c=a.cw_initial_c, lr=a.cw_lr,
                       abort_early=a.cw_abort_early, eot_samples=samples)
        gaps = [((norms[head] > e) & clean_correct[head]).float().mean() - ((longer > e) & clean_correct[head]).float().mean()
                for e in lists["l2_epsilons"]]
        cw_gap = torch.stack(gaps).abs().max()
        record("robust/cw_l2_convergence_gap", cw_gap, "cw_l2", "convergence_gap", "l2", None,
               CW_CHECK_FACTOR * a.cw_steps)
    linf = [e for norm, e in survivors if norm == "linf"]
    unbounded_success = noise_epsilon = None
    if linf:
        # Carlini et al. 2019, 5.2: an attack with no budget must break (nearly) everything
        # no random start: over the whole box it would be a blind guess, which the noise check covers
        broken = ~pgd(logits_fn, x, y, epsilon=1.0, step=UNBOUNDED_STEP, steps=[UNBOUNDED_STEPS], generator=None,
                      random_start=False, eot_samples=samples)[UNBOUNDED_STEPS]
        unbounded_success = (broken & clean_correct).sum() / correct_count
        record("robust/unbounded_pgd_success_rate", unbounded_success, "unbounded_pgd", "success_rate", "linf", 1.0,
               UNBOUNDED_STEPS)
        if a.noise_samples > 0:  # at the largest budget of the strongest attacks that ran
            noise_epsilon = max(lists["pgd_epsilons"]) if "pgd" in names or apgd_names else max(linf)
            survived = uniform_noise_robust(logits_fn, x, y, epsilon=noise_epsilon, samples=a.noise_samples,
                                            generator=generator(), eot_samples=samples)
            record(f"robust/noise_acc_eps{noise_epsilon:.4g}", survived.float().mean(), "noise", "acc", "linf",
                   noise_epsilon, a.noise_samples)
            survive("linf", noise_epsilon, survived)
    for (norm, epsilon), survived in sorted(survivors.items()):
        # robust accuracy in the field's sense: correct under every attack run at this budget
        record(f"robust/{norm}_acc_eps{epsilon:.4g}", survived.float().mean(), "worst_case", "acc", norm, epsilon, None)

    *read, flip_count = torch.stack([*accuracies.values(), flips.float()]).tolist()  # the one host sync
    values = dict(zip(accuracies, read, strict=True))
    for row in rows:
        row["value"] = values[row["value"]]
    metrics = {name: values[name] for name in accuracies}

    # one example's share, plus room for the decisions that change between evaluations
    tolerance = (1 + 2 * flip_count) / n
    checks = masking_checks(
        tolerance=tolerance, clean_acc=values["robust/clean_acc"],
        fgsm_acc={e: values[m] for e, m in fgsm_names.items()},
        pgd_acc={e: {k: values[m] for k, m in by_steps.items()} for e, by_steps in pgd_names.items()},
        apgd_acc={e: min(values[m] for m in ms) for e, ms in apgd_names.items()},
        noise_acc=None if noise_epsilon is None else (noise_epsilon, values[f"robust/noise_acc_eps{noise_epsilon:.4g}"]),
        zero_gradient_fraction=values["robust/zero_gradient_fraction"],
        unbounded_success=None if unbounded_success is None else values["robust/unbounded_pgd_success_rate"],
        cw_success=None if cw_success is None else values["robust/cw_l2_success_rate"],
        cw_convergence_gap=None if cw_success is None else values["robust/cw_l2_convergence_gap"],
        cw_check_examples=min(n, CW_CHECK_EXAMPLES))
    rows.extend(checks)
    violated: dict[str, float] = {}
    for check in checks:  # a check evaluated at several epsilons is violated when any of them is
        violated[check["metric"]] = max(violated.get(check["metric"], 0.0), check["value"])
    metrics.update({f"robust/masking_{name}": value for name, value in violated.items()})
    metrics["robust/masking_checks"] = float(len(violated))
    metrics["robust/masking_violations"] = float(sum(violated.values()))
    metrics["robust/masking_tolerance"] = tolerance
    return metrics, rows


def _lists(attacks: AttackConfig) -> dict[str, list]:
    """The comma-separated lists that the named attacks read, parsed (``float``, ``int`` or ``str``), after the rules
    of :class:`~trainables.config.AttackConfig` (each non-empty with distinct values; parsing a trial ran them too,
    a direct caller may not have)."""
    flat = dataclasses.asdict(attacks)
    AttackConfig.check(flat)
    return {key: split_list(flat[key], element) for key, element in lists_read(flat).items()}
