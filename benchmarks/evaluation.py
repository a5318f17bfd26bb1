"""What the robustness evaluation costs, in training epochs, and what its two tricks save.

One trial of ``--sweep`` (default ``dib_digits``, beta 0: the CE model, whose PGD accuracy is the
lowest) is trained in-process by the harness's loop on its real dataset, timing every epoch.
Then PGD (the sweep's epsilon and step, random start) on the sweep's ``eval_subset`` test
examples, three ways, each timed:

- naive: PGD-7 and PGD-20 as two separate runs, every example attacked at every step;
- one run: a single PGD-20 run whose iterate 7 gives PGD-7 (NOTES.md, Numerics);
- one run, settled examples dropped: also stop attacking an example once it is misclassified
  (this deterministic model's later iterates cannot make it robust again), the harness's path.

The three must give the same robust accuracies (checked); the figures are seconds and seconds
divided by the mean training epoch. Robustness only after the last epoch is the third saving:
an evaluation every epoch would cost ``epochs`` times the figure here.

Then the whole suite the sweep names (``run_evaluations`` with the sweep's config, the masking
checks' zero-gradient, unbounded-PGD and noise measurements included), and each of its attacks
alone, as seconds and as a share of the trial's whole training time: the budget the issue set is
about a tenth.
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks evaluation")
    parser.add_argument("--sweep", default="dib_digits", help="a sweep whose objective has logits (default dib_digits)")
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the sweep's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cw", action="append", default=[], metavar="STEPS,BINARY_STEPS,INITIAL_C,LR[,ABORT]",
                        help="also time CW-L2 alone at these settings (repeatable; ABORT 0 or 1, default the sweep's "
                             "cw_abort_early), e.g. --cw 130,3,1,0.2 --cw 1300,3,1,0.2 --cw 300,3,1,0.1,1")
    parser.add_argument("--skip-suite", action="store_true", help="skip the whole-suite and per-attack timings")
    parser.add_argument("--eval-subset", type=int, default=None, help="test examples attacked (default: the sweep's)")
    args = parser.parse_args(argv)

    from benchmarks.common import machine
    from search_spaces import get_sweep
    from trainables.data import evaluation_subset, load_dataset
    from trainables.evaluation.attacks import pgd
    from trainables.harness import build_training, train_epoch

    device = torch.device(args.device)
    spec = get_sweep(args.sweep).with_overrides({"beta": [args.beta]}, epochs=args.epochs)
    config = spec.trial_configs()[0]
    torch.manual_seed(0)
    data = load_dataset(config["dataset"], data_dir="./data", device=device, train_subset=int(config["train_subset"]),
                        test_subset=int(config["test_subset"]), seed=0)
    objective, optimizer, aux_optimizer, scheduler, ema, fast = build_training(config, data, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out, time.perf_counter() - start

    epoch_seconds = []
    for epoch in range(1, spec.epochs + 1):
        objective.start_epoch(epoch)
        _, seconds = timed(lambda: train_epoch(objective, optimizer, aux_optimizer, ema, data, config, generator,
                                               epoch, fast))
        epoch_seconds.append(seconds)
        scheduler.step()
    epoch_time = sum(epoch_seconds[1:]) / max(1, len(epoch_seconds) - 1)  # the first includes warm-up
    model = ema.module if ema is not None else objective
    model.eval()
    n = int(config["eval_subset"] if args.eval_subset is None else args.eval_subset)
    x, y = evaluation_subset(data.test_x, data.test_y, n)  # the examples the harness attacks
    epsilon = float(str(config["pgd_epsilons"]).split(",")[0])
    settings = {"epsilon": epsilon, "step": float(config["pgd_step_fraction"]) * epsilon}

    def attack(steps, drop):
        return pgd(model.logits, x, y, steps=steps, generator=torch.Generator(device=device).manual_seed(1),
                   drop_settled=drop, **settings)

    attack([7, 20], True)  # warm-up
    (naive7, t7), (naive20, t20) = timed(lambda: attack([7], False)), timed(lambda: attack([20], False))
    one_run, t_one = timed(lambda: attack([7, 20], False))
    dropped, t_drop = timed(lambda: attack([7, 20], True))
    accuracies = {name: (float(r[7].float().mean()), float(r[20].float().mean()))
                  for name, r in (("naive", {7: naive7[7], 20: naive20[20]}), ("one run", one_run), ("dropped", dropped))}
    same = len(set(accuracies.values())) == 1

    print(f"machine: {machine()}; device {device}")
    print(f"{args.sweep}, beta {args.beta:g}: {spec.epochs} epochs of {len(data.train_y)} examples, "
          f"mean epoch {epoch_time:.3f} s; PGD on {n} test examples; clean accuracy "
          f"{float((model.logits(x).argmax(-1) == y).float().mean()):.3f}")
    print(f"robust accuracy (PGD-7, PGD-20): {accuracies['dropped'][0]:.3f}, {accuracies['dropped'][1]:.3f}; "
          f"identical in all three ways: {'yes' if same else 'NO ' + str(accuracies)}")
    naive = t7 + t20
    for label, seconds in (("naive: PGD-7 and PGD-20 separately, every example", naive),
                           ("one PGD-20 run gives both", t_one),
                           ("one run, settled examples dropped (the harness)", t_drop)):
        print(f"  {label:<50} {seconds:7.3f} s = {seconds / epoch_time:6.2f} epochs  {naive / seconds:5.1f}x")
    print(f"  every epoch instead of after the last: {spec.epochs} x {t_drop:.3f} s = "
          f"{spec.epochs * t_drop / epoch_time:.1f} epochs")
    if not args.skip_suite:
        suite_seconds(model, x, y, config, sum(epoch_seconds), timed)
    for setting in args.cw:
        cw_seconds(model, x, y, config, setting, sum(epoch_seconds), timed)
    return 0 if same else 1


def cw_seconds(model, x, y, config, setting: str, training_seconds: float, timed) -> None:
    """CW-L2 alone at one setting: its time against training, success rate, median and accuracy per radius."""
    from trainables.evaluation.attacks import cw_l2, predict

    steps, binary_steps, initial_c, lr, *rest = setting.split(",")
    abort = bool(int(rest[0])) if rest else bool(config["cw_abort_early"])
    norms, seconds = timed(lambda: cw_l2(model.logits, x, y, steps=int(steps), binary_steps=int(binary_steps),
                                         initial_c=float(initial_c), lr=float(lr), abort_early=abort))
    correct = predict(model.logits, x) == y
    radii = [float(r) for r in str(config["l2_epsilons"]).split(",")]
    accuracy = " / ".join(f"{float((correct & (norms > r)).float().mean()):.3f}" for r in radii)
    print(f"  CW {steps} x {binary_steps}, c0 {initial_c}, lr {lr}, early abort {'on' if abort else 'off'}: {seconds:7.2f} s = "
          f"{seconds / training_seconds:5.2f} x training; success {float(torch.isfinite(norms[correct]).float().mean()):.3f}, "
          f"median {float(norms[correct].median()):.3f}, accuracy at L2 {', '.join(f'{r:g}' for r in radii)}: {accuracy}")


def suite_seconds(model, x, y, config, training_seconds: float, timed) -> None:
    """Time the sweep's whole evaluation suite, then each attack alone, against the trial's training."""
    from trainables.config import AttackConfig
    from trainables.evaluation import run_evaluations

    names = [name for name in str(config["evaluations"]).split(",") if name]
    print(f"the sweep's evaluation suite ({', '.join(names)}) on {len(y)} examples, against "
          f"{training_seconds:.1f} s of training ({config['epochs']} epochs):")
    for label, evaluations in (("whole suite", names), *((name, [name]) for name in names)):
        (metrics, _), seconds = timed(lambda: run_evaluations(
            model, x, y, AttackConfig.from_mapping({**config, "evaluations": ",".join(evaluations)}), config["seed"]))
        print(f"  {label:<12} {seconds:7.2f} s = {seconds / training_seconds:6.3f} x training; "
              f"masking violations {metrics['robust/masking_violations']:.0f} of {metrics['robust/masking_checks']:.0f}")
