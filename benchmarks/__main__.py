"""``python -m benchmarks NAME [options]``: run one benchmark and print (and optionally append) its figures."""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = {
    "bit_identity": "two results roots' sweeps compared value for value (a refactoring must not change results)",
    "ctrl_c": "issue 17's Ctrl-C check on the default vib_digits: exit 130, resume command, 20 trials once each",
    "data_pipeline": "device-resident batches + on-device crop/flip vs a torchvision DataLoader",
    "sweep_overhead": "a sweep's fixed and per-trial seconds through the CLI vs the same trials in-process, interleaved, one nice level",
    "sweep_phases": "a short sweep's driver phases (tracking, ray.init, Tune, outputs) and trials on one time line",
    "dib_cifar_sweep": "dib_cifar on one GPU: packed fast-path trials vs the paper's DataLoader + fp32 setup (CUDA only)",
    "dib_cifar_full": "the whole dib_cifar sweep end to end on one GPU, trials packed as Tune packs them (CUDA)",
    "evaluation": "the evaluation suite's cost against training, each attack's, CW at chosen settings, and PGD's two savings",
    "knn_scale": "knn_ib's code f(x) against its zero-entropy noise at each beta'', and what each fitted decoder reads",
    "host_ops": "kernels a training step launches outside its compiled region (what CUDA graphs cannot replay)",
    "profile_step": "torch.profiler over a few training steps: the busiest ops by CUDA and by CPU time",
    "train_step": "the training step per objective: the fast path (bf16, channels_last, no host syncs) vs plain fp32",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    args, rest = parser.parse_known_args(argv)
    return importlib.import_module(f"benchmarks.{args.name}").main(rest)


if __name__ == "__main__":
    sys.exit(main())
