"""The benchmarks run (tiny sizes, on the CPU) and print the figures docs/benchmarks.md quotes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import main


def test_train_step_prints_a_ratio_per_row(capsys, one_thread_per_module):
    assert main(["train_step", "--objectives", "dib,vib", "--steps", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^  (\S.*?)\s+([\d,]+) images/s\s+([\d.]+)x", out, flags=re.M)
    labels = [label.strip() for label, _, _ in rows]
    # dib: plain, metrics once an epoch, sync-free bottleneck, bf16; vib has no bottleneck row
    assert labels.count("plain fp32 (loss.item() every step)") == 2 and labels.count("+ bf16 autocast") == 2
    assert labels.count("+ sync-free entropy bottleneck") == 1
    assert all(float(speed.replace(",", "")) > 0 for _, speed, _ in rows)
    assert [ratio for label, _, ratio in rows if label.startswith("plain")] == ["1.00", "1.00"]


def test_train_step_rejects_an_unknown_objective(capsys):
    with pytest.raises(SystemExit):
        main(["train_step", "--objectives", "dibb"])
    assert "--objectives: unknown dibb" in capsys.readouterr().err


def test_evaluation_finds_the_same_robust_accuracy_three_ways(capsys, one_thread_per_module):
    assert main(["evaluation", "--epochs", "2", "--eval-subset", "32", "--cw", "10,1,1,0.1", "--cw", "10,1,1,0.1,1"]) == 0
    out = capsys.readouterr().out
    assert "identical in all three ways: yes" in out
    assert len(re.findall(r"epochs\s+[\d.]+x$", out, flags=re.M)) == 3
    # the whole suite, then each of dib_digits' five attacks alone, then CW at the chosen setting
    assert len(re.findall(r"^  \S+( suite)?\s+[\d.]+ s = +[\d.]+ x training", out, flags=re.M)) == 6
    for abort in ("off", "on"):  # the sweep's cw_abort_early (off), then the ABORT field's 1
        assert re.search(rf"CW 10 x 1, c0 1, lr 0.1, early abort {abort}: +[\d.]+ s = +[\d.]+ x training; success [\d.]+", out)


def test_data_pipeline_prints_its_ratio(capsys):
    assert main(["data_pipeline", "--images", "512", "--repeats", "1", "--workers", "0"]) == 0
    assert re.search(r"ratio \(median of 1 paired repeats\): [\d.]+x", capsys.readouterr().out)


def test_sweep_phases_puts_the_driver_and_the_trials_on_one_time_line(tmp_path):
    # its own process: it starts and stops its own local Ray, as the CLI does
    done = subprocess.run([sys.executable, "-m", "benchmarks", "sweep_phases", "--trials", "2", "--epochs", "2"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    rows = re.findall(r"^\s+([\d.]+) ->\s+([\d.]+) s\s+[\d.]+ s  (.+)$", out, flags=re.M)
    spans = {label: (float(begin), float(end)) for begin, end, label in rows}
    trials = {label: span for label, span in spans.items() if label.startswith("trial beta=")}
    assert len(trials) == 4, out  # two trials, each: started -> first result -> done
    fit = spans["Tuner.fit"]
    assert spans["ray.init"][1] <= fit[0] <= spans["parquet, reports, MLflow artifacts"][0]
    for label, (begin, end) in trials.items():  # the driver saw both trials inside Tuner.fit
        assert fit[0] <= begin <= end <= fit[1], (label, begin, end, fit)


@pytest.mark.slow
def test_sweep_overhead_fits_fixed_and_per_trial_seconds_at_one_nice_level(tmp_path):
    # its own process: each CLI run starts and stops its own local Ray
    done = subprocess.run([sys.executable, "-m", "benchmarks", "sweep_overhead", "--epochs", "1", "--trials", "1,2",
                           "--repeats", "1"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    # both halves at both sizes, each printed as it finishes
    assert len(re.findall(r"^  repeat 1, [12] trials?, (in-process|CLI, local Ray): [\d.]+ s$", out, flags=re.M)) == 4, out
    assert re.search(r"^load average \(1, 5, 15 min\): [\d. ]+ before, [\d. ]+ after$", out, flags=re.M), out
    # Ray's default would start the trial workers at nice 15 against the in-process trials' 0
    nice = re.search(r"^nice level: in-process trials and the CLI's driver (\d+); trial workers "
                     r"RAY_worker_niceness=(\d+), seen at (.+)$", out, flags=re.M)
    assert nice and nice[1] == nice[2] == nice[3], out
    number = r"-?[\d.]+"
    assert re.search(rf"^CLI, local Ray: fixed {number} s \({number} to {number}\) per sweep, "
                     rf"per trial {number} s \({number} to {number}\)", out, flags=re.M), out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_dib_cifar_sweep_needs_a_gpu(capsys):
    assert main(["dib_cifar_sweep"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_dib_cifar_full_runs_the_sweeps_trials_one_after_another_through_the_harness(capsys):
    """Two of the sweep's trials (betas 0 and 32), one at a time, each through run_trial in a
    process of its own: both report every epoch, and the second starts when the first has ended."""
    assert main(["dib_cifar_full", "--device", "cpu", "--trials", "0,6", "--trials-per-gpu", "1", "--epochs", "2",
                 "--images", "64", "--test-images", "32", "--set", "eval_subset=16",
                 # every attack of the sweep, at a few iterations: APGD-T's 9 x 100 and CW's 130 x 3 on a CPU
                 # ResNet-18 took minutes a trial
                 *("--set", "apgd_steps=2", "--set", "apgd_targets=1", "--set", "cw_steps=2", "--set", "cw_binary_steps=1")]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^  beta=(\S+): +([\d.]+) -> +([\d.]+) s .*; (\d+) reports; test/acc ([\d.]+)", out, flags=re.M)
    assert [beta for beta, *_ in rows] == ["0", "32"], out
    assert all(reports == "2" for *_, reports, _ in rows)
    (_, start_0, end_0, _, _), (_, start_1, end_1, _, _) = rows
    assert float(start_0) < float(end_0) <= float(start_1) < float(end_1)
    wall = float(re.search(r"^wall clock, 2 trial\(s\): ([\d.]+) s", out, flags=re.M).group(1))
    assert wall >= float(end_1) - 0.5


@pytest.mark.parametrize("text,expected", [("all", [0, 1, 2, 3, 4, 5, 6]), ("0-3", [0, 1, 2, 3]), ("2,5", [2, 5]),
                                           ("4-6", [4, 5, 6])])
def test_dib_cifar_full_picks_trials(text, expected):
    from benchmarks.dib_cifar_full import parse_trials

    assert parse_trials(text, 7) == expected


@pytest.mark.parametrize("text", ["7", "0-9", "1,1", "x", ""])
def test_dib_cifar_full_refuses_trials_it_does_not_have(text):
    from benchmarks.dib_cifar_full import parse_trials

    with pytest.raises(ValueError, match=f"--trials {text!r}: expected 'all' or distinct indices"):
        parse_trials(text, 7)


def test_profile_step_times_and_profiles_the_harness_step(capsys, one_thread_per_module):
    assert main(["profile_step", "--batch-sizes", "16", "--steps", "2", "--rows", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^dib, batch 16, compile off: [\d.]+ ms a step, [\d,]+ images/s$", out, flags=re.M), out
    assert "Self CPU time total" in out


def test_host_ops_counts_each_phase_of_the_harness_step(capsys, one_thread_per_module):
    """vib's step: a compiled forward and backward, and outside them the batch's gather, the metric
    sums, the EMA and the Adam update as one fused kernel (built fused, as on CUDA)."""
    from benchmarks.host_ops import BACKWARD, EAGER, FORWARD, count, launches_a_kernel

    counter = count("vib", batch_size=16, steps=2, device=torch.device("cpu"))
    assert counter.kernels[FORWARD] > 0 and counter.kernels[BACKWARD] > 0 and counter.kernels[EAGER] > 0
    assert counter.eager_ops["_fused_adam_"] == 2 and counter.eager_ops["_foreach_lerp_"] == 2  # Adam, EMA
    assert not launches_a_kernel(torch.ops.aten.view.default) and launches_a_kernel(torch.ops.aten.add_.Tensor)
    assert main(["host_ops", "--objectives", "vib", "--steps", "1", "--batch-size", "8"]) == 0
    assert re.search(r"^vib\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\S", capsys.readouterr().out, flags=re.M)


def test_dibs_aux_loss_runs_inside_the_compiled_step(one_thread_per_module):
    """The entropy model's aux loss (about 60 kernels a step, forward and backward) is part of the
    region compile=cudagraphs replays: what stays eager is the batch's gather and crop/flip, two
    fused Adam updates and the metric sums."""
    from benchmarks.host_ops import EAGER, count

    counter = count("dib", batch_size=8, steps=2, device=torch.device("cpu"))
    assert counter.eager_ops["bmm"] == counter.eager_ops["tanh"] == counter.eager_ops["softplus"] == 0
    assert counter.eager_ops["_fused_adam_"] == 4
    assert counter.kernels[EAGER] / 2 <= 25, dict(counter.eager_ops)


def _run(root: Path, name: str, acc: list[float], seconds: list[float]) -> None:
    import json

    import pandas as pd

    run = root / f"{name}_2026-12-07_00-00-00"
    run.mkdir(parents=True)
    (run / "sweep.json").write_text(json.dumps({"spec": {"name": name}, "state": "finished"}))
    final = pd.DataFrame({"trial_id": ["a", "b"], "config/beta": [1.0, 0.5], "test/acc": acc,
                          "time_total_s": seconds, "test/rate_bits": [float("nan"), 3.0]})
    final.to_parquet(run / "final.parquet")


def test_bit_identity_compares_values_not_clocks_or_row_order(tmp_path, capsys):
    _run(tmp_path / "before", "vib_digits", [0.9, 0.8], [10.0, 11.0])
    _run(tmp_path / "after", "vib_digits", [0.9, 0.8], [12.0, 9.0])
    assert main(["bit_identity", str(tmp_path / "before"), str(tmp_path / "after")]) == 0
    assert "vib_digits: identical (2 trials" in capsys.readouterr().out
    _run(tmp_path / "later", "vib_digits", [0.9, 0.8000001], [10.0, 11.0])
    assert main(["bit_identity", str(tmp_path / "before"), str(tmp_path / "later")]) == 1
    assert "final.parquet: test/acc: 1 of 2 values differ" in capsys.readouterr().out
