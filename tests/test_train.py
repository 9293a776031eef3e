"""Training runs: output files, reproduction of the notebooks, divergence, interruption."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from conftest import make_cfg, run
from hydra.utils import instantiate

from benchmarks.notebook_loop import notebook_run
from optbench.data.datasets import Split


def read(run_dir):
    return (
        pd.read_csv(run_dir / "train.csv"),
        pd.read_csv(run_dir / "test.csv"),
        json.loads((run_dir / "summary.json").read_text()),
    )


def test_csv_schema_and_row_counts(tmp_path):
    summary = run(tmp_path, "optimizer=adam", "iterations=50", "eval_every=20", "device=cpu")
    train, test, on_disk = read(tmp_path)
    assert list(train.columns) == ["iteration", "loss", "accuracy", "lr"]
    assert list(test.columns) == ["iteration", "loss", "accuracy", "seconds"]
    assert test.seconds.ge(0).all() and test.seconds.is_monotonic_increasing  # training time, evaluations excluded
    assert train.iteration.tolist() == list(range(1, 51))
    assert test.iteration.tolist() == [20, 40, 50]  # every eval_every, and at the end
    assert train.accuracy.between(0, 1).all() and test.accuracy.between(0, 1).all()
    assert train.loss.gt(0).all() and train.loss.map(math.isfinite).all()
    assert on_disk == summary
    assert summary["status"] == "completed" and summary["iterations_run"] == 50
    assert summary["final_test_accuracy"] == test.accuracy.iloc[-1]
    assert summary["best_test_accuracy"] == test.accuracy.max()
    assert summary["final_train_loss"] == pytest.approx(train.loss.iloc[-1], rel=1e-12)
    assert summary["device"] == "cpu" and summary["optimizer"] == "adam"
    for key in ("wall_seconds", "iterations_per_second", "torch_version"):
        assert summary[key]


def test_minibatch_accuracy_is_a_fraction_of_the_batch(tmp_path):
    run(tmp_path, "iterations=7", "batch_size=64", "eval_every=7")
    train, _, _ = read(tmp_path)
    assert ((train.accuracy * 64).round(9) % 1 == 0).all()


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = run(tmp_path / "a", "iterations=40", "eval_every=20")
    b = run(tmp_path / "b", "iterations=40", "eval_every=20")
    run(tmp_path / "c", "iterations=40", "eval_every=20", "seed=1")
    assert read(tmp_path / "a")[0].equals(read(tmp_path / "b")[0])
    assert a["final_test_accuracy"] == b["final_test_accuracy"]
    assert not read(tmp_path / "a")[0].loss.equals(read(tmp_path / "c")[0].loss)


# Exactly the notebooks' loop, against optbench, over an epoch boundary: the notebooks' 600 batches of 100
# (slow tier, every optimizer), or 60 batches of 1000 (fast tier: the same draws, 70 steps).
@pytest.mark.parametrize(
    "name, batch_size, iterations",
    [
        ("sgd", 1000, 70),
        *(
            pytest.param(name, 100, 700, marks=pytest.mark.slow)
            for name in ["sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad", "adadelta", "adamax"]
        ),
    ],
)
def test_matches_notebook_loop_exactly(tmp_path, data_root, name, batch_size, iterations):
    cfg = make_cfg(f"optimizer={name}")
    reference = notebook_run(
        instantiate(cfg.optimizer, _convert_="all"),
        data_root,
        iterations=iterations,
        batch_size=batch_size,
        eval_every=iterations // 2,
        per_sample_transforms=False,
    )
    run(
        tmp_path,
        f"optimizer={name}",
        f"iterations={iterations}",
        f"batch_size={batch_size}",
        f"eval_every={iterations // 2}",
        "device=cpu",
        "flush_denormal=false",
    )
    train, test, _ = read(tmp_path)
    assert (100 * test.accuracy).tolist() == pytest.approx(reference.test_accuracy, abs=1e-9)
    assert train.loss.tolist() == reference.train_loss  # bit for bit


@pytest.mark.slow
def test_full_length_reproduction_of_the_notebook(tmp_path):
    """`optbench optimizer=sgd` on a CPU: the reference numbers of ../shared/data/README.md."""
    summary = run(tmp_path, "optimizer=sgd", "device=cpu")
    _, test, _ = read(tmp_path)
    assert test.iteration.tolist() == [500, 1000, 1500, 2000, 2500, 3000]
    reference = [91.50, 92.47, 93.86, 94.47, 95.19, 95.59]
    assert (100 * test.accuracy).tolist() == pytest.approx(reference, abs=0.05 + 1e-9)
    assert summary["status"] == "completed" and summary["iterations_run"] == 3000


def test_two_hidden_layers(tmp_path):
    summary = run(tmp_path, "model.hidden=[100,100]", "iterations=100", "eval_every=50")
    assert summary["status"] == "completed"
    assert summary["final_test_accuracy"] > 0.5


def test_divergence_stops_and_keeps_finite_rows(tmp_path):
    summary = run(tmp_path, "optimizer=sgd", "optimizer.lr=1e30", "iterations=200", "eval_every=50")
    train, test, _ = read(tmp_path)
    assert summary["status"] == "diverged"
    assert summary["diverged_at"] >= 1 and summary["iterations_run"] == summary["diverged_at"] - 1
    assert len(train) == summary["iterations_run"]
    assert train.loss.map(math.isfinite).all()
    assert (test.iteration < summary["diverged_at"]).all()


def test_huge_but_finite_losses_count_as_divergence(tmp_path):
    """SGD lr=1000 (issue 5's example) stays finite but explodes to ~1e14: stopped as diverged."""
    summary = run(tmp_path, "optimizer=sgd", "optimizer.lr=1000", "iterations=300", "eval_every=100")
    train, _, _ = read(tmp_path)
    assert summary["status"] == "diverged" and "exceeded 1000 x the first loss" in summary["divergence"]
    assert train.loss.max() <= 1000 * train.loss.iloc[0]
    assert len(train) == summary["diverged_at"] - 1


def test_divergence_factor_null_stops_only_on_non_finite(tmp_path):
    summary = run(
        tmp_path, "optimizer=sgd", "optimizer.lr=1000", "iterations=300", "eval_every=100", "divergence_factor=null"
    )
    assert summary["status"] == "completed"


@pytest.mark.parametrize("completed", [37, 0])
def test_interrupt_keeps_completed_iterations(tmp_path, monkeypatch, completed):
    steps = {"n": 0}
    real_batch = Split.batch

    def interrupt_after_completed_steps(self, index):
        steps["n"] += 1
        if steps["n"] == completed + 1:
            raise KeyboardInterrupt
        return real_batch(self, index)

    monkeypatch.setattr(Split, "batch", interrupt_after_completed_steps)
    summary = run(tmp_path, "iterations=100", "eval_every=20")
    train, test, on_disk = read(tmp_path)
    assert summary["status"] == on_disk["status"] == "interrupted"
    assert summary["iterations_run"] == completed
    assert train.iteration.tolist() == list(range(1, completed + 1))
    assert test.iteration.tolist() == [20] * (completed >= 20)


def test_cpu_settings_are_restored(tmp_path):
    threads = torch.get_num_threads()
    run(tmp_path, "iterations=5", "eval_every=5", "flush_denormal=true", "threads=1")
    assert torch.tensor([1e-40]).item() != 0.0  # the process-wide denormal flag is off again
    assert torch.get_num_threads() == threads


def test_one_thread_gives_the_same_numbers_within_rounding(tmp_path):
    """threads=1 runs other matmul kernels than the default count (on Intel and AMD alike), which
    reduce in another order: the last bits differ, so this is a tolerance, not bit-for-bit."""
    run(tmp_path / "default", "iterations=100", "eval_every=50")
    run(tmp_path / "one", "iterations=100", "eval_every=50", "threads=1")
    (train_default, test_default, _), (train_one, test_one, _) = read(tmp_path / "default"), read(tmp_path / "one")
    assert train_one.loss.to_numpy() == pytest.approx(train_default.loss.to_numpy(), rel=1e-4)
    assert test_one.loss.to_numpy() == pytest.approx(test_default.loss.to_numpy(), rel=1e-4)
    assert test_one.accuracy.to_numpy() == pytest.approx(test_default.accuracy.to_numpy(), abs=1e-3)


def test_training_clock_leaves_warm_up_and_evaluations_out(monkeypatch):
    """test.csv's `seconds` is AlgoPerf's accumulated submission time: the first step (warm-up: handles,
    first-use kernels, optimizer state) and the evaluations do not count."""
    from optbench.runtime import clock as clock_module

    now = iter([9.0, 10.0, 12.0, 15.0, 16.0, 17.5])  # created, warm-up done, pause begins, pause ends, readings
    monkeypatch.setattr(clock_module.time, "perf_counter", lambda: next(now))
    clock = clock_module.TrainingClock()
    assert clock.seconds == 0.0 and clock.warmup_seconds is None  # before the warm-up step is done: no reading
    clock.start()
    assert clock.warmup_seconds == 1.0
    with clock.paused():  # 3 s of evaluation
        pass
    assert clock.seconds == 3.0  # 16 - 10 - 3
    assert clock.seconds == 4.5
