"""How large ``knn_ib``'s code f(x) is against its zero-entropy noise, and what each decoder reads at each beta''.

Kirsch, Lyle and Gal's Z = f(x) + eps with eps ~ N(0, I / (2 pi e)) (std 0.242 per dimension). Their objective
prices H(Z) by a k-NN estimate on Z, which an encoder can lower by shrinking f(x) until Z is mostly eps. The two
decoders fitted after training read that differently (``KnnInformationBottleneck.final_evaluations``):

- the residual decoder is *trained on* Z = f(x) + fresh noise, so once f(x) varies far less than the noise it can
  learn only the class prior (chance);
- the Gaussian decoder fits class means on the noiseless f(x) and adds the noise's variance to each covariance, and
  like the centroid classifier it *scores* the noiseless test latents f(x), where tiny class-mean differences still
  separate the classes.

One trial per ``--beta`` of ``--sweep`` (default ``knn_ib_mnist5k``) is trained in-process by the harness, with no
attacks and no information plane; then, on the test split, the per-dimension standard deviation of f(x) (overall and
within a class), the mean Euclidean distance between class means of f(x), the noise's per-dimension std and its
typical norm sqrt(K) x 0.242, and the three decoders' test accuracies.
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks knn_scale")
    parser.add_argument("--sweep", default="knn_ib_mnist5k", help="a knn_ib sweep (default knn_ib_mnist5k)")
    parser.add_argument("--beta", type=float, action="append", help="beta'' values (repeatable; default 0 and 0.8)")
    args = parser.parse_args(argv)

    from benchmarks.common import load_average, machine
    from search_spaces import get_sweep
    from trainables import harness
    from trainables.estimators import ZERO_ENTROPY_STD

    spec = get_sweep(args.sweep)
    if spec.objective != "knn_ib":
        raise SystemExit(f"--sweep {args.sweep}: its objective is {spec.objective!r}; this benchmark needs a knn_ib sweep")
    print(f"machine: {machine()}; load average {load_average()}")
    for beta in args.beta or [0.0, 0.8]:
        config = {**spec.with_overrides({"beta": [beta]}).trial_configs()[0], "evaluations": "", "infoplane_every": 0}
        captured = {}

        def capture(model, data, trial):
            captured.update(model=model, data=data)
            return {}

        started = time.perf_counter()
        final_evaluations, harness._final_evaluations = harness._final_evaluations, capture
        try:
            harness.run_trial(config, data_dir="./data", device=torch.device("cpu"), report=lambda metrics, ckpt: None)
        finally:
            harness._final_evaluations = final_evaluations
        model, data = captured["model"].eval(), captured["data"]
        z = model._latents(data.test_x)  # f(x), noiseless: (N, K)
        classes = data.test_y.unique()
        within = torch.stack([z[data.test_y == c].std(0) for c in classes]).mean().item()
        means = torch.stack([z[data.test_y == c].mean(0) for c in classes])
        between = torch.cdist(means, means)[~torch.eye(len(classes), dtype=torch.bool)].mean().item()
        decoders, _ = model.final_evaluations(data)
        k = z.shape[1]
        print(f"beta''={beta:g}: f(x) per-dimension std {z.std(0).mean().item():.4f} (within a class {within:.4f}); "
              f"class means {between:.4f} apart (K = {k}); noise std {ZERO_ENTROPY_STD:.4f}, norm about "
              f"{ZERO_ENTROPY_STD * k ** 0.5:.2f}; test accuracy: residual {decoders['decoder/resfc_acc']:.3f}, "
              f"Gaussian {decoders['decoder/gmm_acc']:.3f}, centroid {decoders['decoder/centroid_acc']:.3f}; "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    print(f"load average {load_average()}")
    return 0
