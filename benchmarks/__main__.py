"""``python -m benchmarks NAME [options]``: run one benchmark and print (and optionally append) its figures."""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = {
    "data_pipeline": "device-resident batches + on-device crop/flip vs a torchvision DataLoader",
    "sweep_overhead": "8 short trials through Ray Tune vs the same trials called in-process",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    args, rest = parser.parse_known_args(argv)
    return importlib.import_module(f"benchmarks.{args.name}").main(rest)


if __name__ == "__main__":
    sys.exit(main())
