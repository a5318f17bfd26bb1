"""The robustness suite run once after training: FGSM, PGD (L-inf) and CW-L2, with gradient-masking checks.

``run_evaluations(objective, x, y, config)`` attacks ``objective.logits`` on the test subset
``(x, y)`` with the attacks named in ``config["evaluations"]`` and returns ``(metrics, rows)``:
flat ``robust/*`` floats for Tune and MLflow, and one row per (evaluation, epsilon, steps) for
``evaluations.parquet``. Attacks, conventions, metric names and rows: docs/robustness.md.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from trainables.evaluation.attacks import cw_l2, fgsm_robust, pgd, predict
from trainables.evaluation.masking import masking_checks

EVALUATIONS = ("fgsm", "pgd", "cw_l2")


def run_evaluations(objective, x: Tensor, y: Tensor,
                    config: Mapping[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run the attacks named in ``config["evaluations"]`` on ``(x, y)``.

    Args:
        objective: anything with ``logits(x)``, ``eval()``, ``train(mode)`` and ``training``
            (an :class:`~trainables.objectives.base.Objective`). It is put in eval mode for the
            attacks and given back in the mode it had.
        x: test images in [0, 1], already the configured subset, on the model's device.
        y: their int64 labels.
        config: the flat trial config; keys read: ``evaluations`` (comma-separated names from
            :data:`EVALUATIONS`, may be empty), ``eot_samples``, ``seed``, and per attack
            ``fgsm_epsilons``; ``pgd_epsilon``, ``pgd_step``, ``pgd_steps``; ``cw_steps``,
            ``cw_c``, ``cw_lr``, ``cw_l2_epsilons``.

    Returns:
        ``(metrics, rows)``; ``({}, [])`` when no evaluation is named.

    Raises:
        ValueError: an unknown evaluation name, or a config value out of range, named with what
            would be accepted; images outside [0, 1].
    """
    names = _evaluation_names(config.get("evaluations", ""))
    if not names:
        return {}, []
    settings = _settings(config, names)
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
            return _run(objective.logits, x, y, names, settings)
    finally:
        objective.train(was_training)


def _run(logits_fn, x: Tensor, y: Tensor, names: list[str], s: dict[str, Any]):
    n = len(y)
    samples = s["eot_samples"]
    accuracies: dict[str, Tensor] = {}  # metric name -> 0-d tensor, read in one host sync at the end
    rows: list[dict[str, Any]] = []  # "value" filled from accuracies at the end

    def record(name: str, value: Tensor, evaluation: str, metric: str, norm: str, epsilon, steps) -> None:
        if name in accuracies:
            raise ValueError(f"evaluations: two strengths give the same metric name {name!r}; "
                             "epsilons must differ in their first 4 significant digits")
        accuracies[name] = value.float()
        rows.append({"evaluation": evaluation, "metric": metric, "norm": norm, "epsilon": epsilon, "steps": steps,
                     "index": None, "value": name})

    first = predict(logits_fn, x, eot_samples=samples)
    clean_correct = first == y
    # a stochastic model's decisions differ between two evaluations of the same inputs
    flips = (first != predict(logits_fn, x, eot_samples=samples)).sum()
    record("robust/clean_acc", clean_correct.float().mean(), "clean", "acc", "", None, None)
    fgsm_names: dict[float, str] = {}
    pgd_names: dict[int, str] = {}
    if "fgsm" in names:
        robust = fgsm_robust(logits_fn, x, y, s["fgsm_epsilons"], eot_samples=samples)
        for epsilon, survived in robust.items():
            fgsm_names[epsilon] = f"robust/fgsm_acc_eps{epsilon:.4g}"
            record(fgsm_names[epsilon], survived.float().mean(), "fgsm", "acc", "linf", epsilon, 1)
    if "pgd" in names:
        generator = torch.Generator(device=x.device).manual_seed(s["seed"])
        robust = pgd(logits_fn, x, y, epsilon=s["pgd_epsilon"], step=s["pgd_step"], steps=s["pgd_steps"],
                     generator=generator, eot_samples=samples)
        for steps, survived in robust.items():
            pgd_names[steps] = f"robust/pgd{steps}_acc"
            record(pgd_names[steps], survived.float().mean(), "pgd", "acc", "linf", s["pgd_epsilon"], steps)
    if "cw_l2" in names:
        norms = cw_l2(logits_fn, x, y, c=s["cw_c"], steps=s["cw_steps"], lr=s["cw_lr"], eot_samples=samples)
        for epsilon in s["cw_l2_epsilons"]:
            record(f"robust/cw_l2_acc_eps{epsilon:.4g}", (norms > epsilon).float().mean(), "cw_l2", "acc", "l2",
                   epsilon, s["cw_steps"])
        # the lower median over all examples (0 where clean is wrong, inf where CW failed): the
        # L2 radius at which CW accuracy falls to one half
        record("robust/cw_l2_median_norm", norms.median(), "cw_l2", "median_norm", "l2", None, s["cw_steps"])

    *read, flip_count = torch.stack([*accuracies.values(), flips.float()]).tolist()  # the one host sync
    values = dict(zip(accuracies, read, strict=True))
    for row in rows:
        row["value"] = values[row["value"]]
    metrics = {name: values[name] for name in accuracies}

    # one example's share, plus room for the decisions that change between evaluations
    tolerance = (1 + 2 * flip_count) / n
    checks = masking_checks({e: values[m] for e, m in fgsm_names.items()}, {k: values[m] for k, m in pgd_names.items()},
                            s.get("pgd_epsilon", math.nan), tolerance, clean_acc=values["robust/clean_acc"])
    rows.extend(checks)
    for check in checks:
        metrics[f"robust/masking_{check['metric']}"] = check["value"]
    metrics["robust/masking_checks"] = float(len(checks))
    metrics["robust/masking_violations"] = float(sum(check["value"] for check in checks))
    metrics["robust/masking_tolerance"] = tolerance
    return metrics, rows


def _evaluation_names(value: Any) -> list[str]:
    if not isinstance(value, str):
        raise ValueError(f"evaluations must be a comma-separated string of names from {list(EVALUATIONS)}, "
                         f"got {value!r}")
    names = []
    for name in (part.strip() for part in value.split(",")):
        if not name:
            continue
        if name not in EVALUATIONS:
            close = difflib.get_close_matches(name, EVALUATIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown evaluation {name!r}{hint}; accepted: {', '.join(EVALUATIONS)}")
        if name not in names:
            names.append(name)
    return names


def _settings(config: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """The config values the named attacks need, checked."""
    s: dict[str, Any] = {"eot_samples": _int(config, "eot_samples", 1)}
    if "fgsm" in names:
        s["fgsm_epsilons"] = _numbers(config, "fgsm_epsilons", float)
    if "pgd" in names:
        s["pgd_epsilon"] = _number(config, "pgd_epsilon", lower=0.0)
        s["pgd_step"] = _number(config, "pgd_step", lower=0.0, strict=True)
        s["pgd_steps"] = _numbers(config, "pgd_steps", int, lower=1)
        s["seed"] = _int(config, "seed", 0)
    if "cw_l2" in names:
        s["cw_steps"] = _int(config, "cw_steps", 1)
        s["cw_c"] = _number(config, "cw_c", lower=0.0, strict=True)
        s["cw_lr"] = _number(config, "cw_lr", lower=0.0, strict=True)
        s["cw_l2_epsilons"] = _numbers(config, "cw_l2_epsilons", float)
    return s


def _number(config, key: str, *, lower: float, strict: bool = False) -> float:
    value = config.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lower or (strict and value == lower):
        raise ValueError(f"{key} must be a finite number {'>' if strict else '>='} {lower:g}, got {value!r}")
    return float(value)


def _int(config, key: str, lower: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < lower:
        raise ValueError(f"{key} must be an int >= {lower}, got {value!r}")
    return value


def _numbers(config, key: str, kind: type, *, lower: float = 0) -> list:
    """A non-empty comma-separated list (a lone number is accepted too), each >= lower, no repeats."""
    value = config.get(key)
    parts = [str(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if parts is None and isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    try:
        numbers = [kind(p) for p in parts] if parts else None
    except ValueError:
        numbers = None
    if not numbers or any(not math.isfinite(v) or v < lower for v in numbers) or len(set(numbers)) != len(numbers):
        what = "ints" if kind is int else "finite numbers"
        raise ValueError(f"{key} must be a comma-separated list of distinct {what} >= {lower:g}, got {value!r}")
    return numbers
