"""Tasks: every preset runs and writes the contract files; 2-D paths, the quadratic, targets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_cfg, run
from omegaconf import OmegaConf
from test_cli import cli
from test_cli import summary as read_summary

from optbench.config.compose import compose
from optbench.config.sources import config_dir
from optbench.config.validation import check_target
from optbench.data import datasets as data
from optbench.errors import OptbenchError
from optbench.job.job import _results, run_job
from optbench.model import Conv2c2d
from optbench.rundir.recorder import Outcome
from optbench.tasks import Evaluation, Target, build_task
from optbench.tasks.functions import FUNCTIONS

TASKS = sorted(p.stem for p in (Path(config_dir()) / "task").glob("*.yaml"))
TWO_D = ["rosenbrock", "beale", "saddle", "rastrigin"]
NEEDS_FASHION_MNIST = {"fmnist_mlp", "fmnist_2c2d"}


def test_the_suite_ships_every_task_of_the_issue():
    assert set(TASKS) >= {"mnist_mlp", "fmnist_mlp", "fmnist_2c2d", "quadratic_deep", *TWO_D, "thermometer"}


def test_default_task_is_the_notebooks_job():
    cfg = make_cfg()
    assert cfg.task.name == "mnist_mlp" and cfg.dataset.name == "mnist" and list(cfg.model.hidden) == [100]
    assert (cfg.iterations, cfg.batch_size, cfg.eval_every, cfg.seed) == (3000, 100, 500, 0)


# The CNN and the GPU-sized transformer (10.8M parameters: its two evaluations alone take ~90 s on 2 cores).
# nanoGPT's CPU recipe (its estimates: 120 forward passes a run) runs in the fast tier as tests/test_nanogpt.py's short run.
SLOW_TASKS = {"fmnist_2c2d", "shakespeare_char_gpu", "shakespeare_char_nanogpt_cpu"}


@pytest.mark.parametrize("task", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW_TASKS else t for t in TASKS])
def test_every_task_runs_and_writes_the_contract_files(tmp_path, task):
    if task in NEEDS_FASHION_MNIST and not data.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Fashion-MNIST: Debian's dataset-fashion-mnist is not installed (and no download here)")
    preset = OmegaConf.load(Path(config_dir()) / "task" / f"{task}.yaml")
    # nanoGPT's estimate: 2 batches a split, not the recipes' 20 or 200 (200 batches of the GPU-sized model, at
    # iterations 0, 3 and 6, would be 1,200 forward passes of 16,384 characters: an hour on 2 cores)
    fewer = ["task.eval_iters=2"] * (OmegaConf.select(preset, "task.eval_iters") is not None)
    summary = run(tmp_path, f"task={task}", "optimizer.lr=1e-3", "iterations=6", "eval_every=3", "device=cpu", *fewer)
    train, test = pd.read_csv(tmp_path / "train.csv"), pd.read_csv(tmp_path / "test.csv")
    assert summary["status"] == "completed" and summary["task"] == task
    assert summary["target"] == dict(preset.task.target, threshold=float(preset.task.target.threshold))
    assert summary["kind"] in ("classification", "regression", "function")
    assert "reached_target_at" in summary
    clipped = preset.get("grad_clip") is not None  # nanoGPT's recipes clip, and so record the norm
    from_start = OmegaConf.select(preset, "task.eval_iters") is not None  # nanoGPT's estimate starts at iteration 0
    assert list(train.columns) == ["iteration", "loss", "accuracy", "lr", *["grad_norm"] * clipped]
    assert list(test.columns) == ["iteration", "loss", "accuracy", "seconds"]
    assert test.seconds.ge(0).all() and test.seconds.is_monotonic_increasing  # training time, evaluations excluded
    assert train.iteration.tolist() == list(range(1, 7)) and test.iteration.tolist() == [0] * from_start + [3, 6]
    assert train.loss.map(math.isfinite).all() and test.loss.map(math.isfinite).all()
    assert train.accuracy.notna().all() == (summary["kind"] == "classification")
    assert (tmp_path / "trajectory.csv").exists() == (task in TWO_D)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


@pytest.mark.parametrize("task", TWO_D)
def test_two_d_trajectory_starts_at_the_start_and_follows_every_step(tmp_path, task):
    summary = run(tmp_path, f"task={task}", "optimizer.lr=1e-3", "iterations=40", "eval_every=20")
    path = pd.read_csv(tmp_path / "trajectory.csv")
    start = list(make_cfg(f"task={task}").task.start)
    assert list(path.columns) == ["iteration", "x", "y"] and path.iteration.tolist() == list(range(41))
    assert [path.x[0], path.y[0]] == start
    assert summary["final_parameters"]["point"] == [path.x.iloc[-1], path.y.iloc[-1]]
    test = pd.read_csv(tmp_path / "test.csv")  # the test loss is the noise-free f at the recorded point
    f = FUNCTIONS[task].formula
    for iteration, loss in zip(test.iteration, test.loss):
        row = path[path.iteration == iteration].iloc[0]
        assert loss == pytest.approx(f(torch.tensor(row.x), torch.tensor(row.y)).item(), rel=1e-12)


def _rosenbrock_gradient(x: float, y: float) -> np.ndarray:
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


@pytest.mark.parametrize("optimizer,momentum", [("sgd", 0.0), ("momentum", 0.9)])
def test_rosenbrock_paths_equal_a_float64_reference(tmp_path, optimizer, momentum):
    lr, steps = 1e-3, 300
    run(tmp_path, "task=rosenbrock", f"optimizer={optimizer}", f"optimizer.lr={lr}", f"iterations={steps}")
    path = pd.read_csv(tmp_path / "trajectory.csv")[["x", "y"]].to_numpy()
    point, velocity = np.array([-1.2, 1.0]), np.zeros(2)
    expected = [point.copy()]
    for step in range(steps):  # torch.optim.SGD: v = g on the first step, then v = mu v + g; p -= lr v
        gradient = _rosenbrock_gradient(*point)
        velocity = gradient if step == 0 else momentum * velocity + gradient
        point = point - lr * velocity
        expected.append(point.copy())
    assert np.abs(path - np.array(expected)).max() < 1e-3
    assert np.linalg.norm(path[-1] - path[0]) > 0.1  # the path went somewhere


def test_noisy_two_d_task_is_reproducible_and_differs_by_seed(tmp_path):
    paths = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run(tmp_path / name, "task=rosenbrock", "task.noise=1.0", "optimizer.lr=1e-3", "iterations=30", f"seed={seed}")
        paths[name] = pd.read_csv(tmp_path / name / "trajectory.csv")
    assert paths["a"].equals(paths["b"]) and not paths["a"].equals(paths["c"])
    quiet = run(tmp_path / "quiet", "task=rosenbrock", "optimizer.lr=1e-3", "iterations=30")
    assert quiet["final_parameters"]["point"] != [paths["a"].x.iloc[-1], paths["a"].y.iloc[-1]]


@pytest.mark.slow
def test_diverging_two_d_run_ends_as_diverged_without_a_traceback(tmp_path):
    result = cli("task=saddle", "optimizer.lr=10", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    summary = read_summary(tmp_path)
    assert summary["status"] == "diverged" and summary["diverged_at"] > 1
    path = pd.read_csv(tmp_path / "trajectory.csv")
    train = pd.read_csv(tmp_path / "train.csv")
    assert len(train) == summary["iterations_run"] == summary["diverged_at"] - 1
    assert path.iteration.tolist() == list(range(summary["diverged_at"]))  # the start, then every kept step


def test_quadratic_deep_is_deepobs_instance_fixed_by_its_own_seed():
    task = build_task(make_cfg("task=quadratic_deep"))
    task.setup(torch.device("cpu"))
    hessian = task.hessian.double()
    eigenvalues = torch.linalg.eigvalsh(hessian)
    assert torch.allclose(hessian, hessian.T, atol=1e-5)
    assert ((eigenvalues[:90] > -1e-4) & (eigenvalues[:90] < 1 + 1e-4)).all()
    assert ((eigenvalues[90:] > 30 - 1e-3) & (eigenvalues[90:] < 60 + 1e-3)).all()
    assert task.train.shape == task.test.shape == (1000, 100)
    assert abs(task.train.std().item() - 0.6) < 0.01 and not torch.equal(task.train, task.test)
    torch.manual_seed(0)
    assert torch.equal(task.build_model().theta.detach(), torch.ones(100))  # DeepOBS starts at all ones
    again = build_task(make_cfg("task=quadratic_deep", "seed=5"))
    again.setup(torch.device("cpu"))
    assert torch.equal(again.hessian, task.hessian) and torch.equal(again.train, task.train)
    other = build_task(make_cfg("task=quadratic_deep", "task.instance_seed=7"))
    other.setup(torch.device("cpu"))
    assert not torch.equal(other.hessian, task.hessian)


def test_quadratic_deep_makes_progress_with_a_stable_learning_rate(tmp_path):
    summary = run(tmp_path, "task=quadratic_deep", "optimizer.lr=0.01", "iterations=300", "eval_every=100")
    test = pd.read_csv(tmp_path / "test.csv")
    assert summary["status"] == "completed" and test.loss.iloc[-1] < 0.3 * 354  # started near 354


def test_conv2c2d_is_deepobs_2c2d():
    torch.manual_seed(0)
    model = Conv2c2d(784, 10)
    assert sum(p.numel() for p in model.parameters()) == 3_274_634  # DeepOBS's fmnist_2c2d parameter count
    assert model(torch.rand(3, 784)).shape == (3, 10)
    weights = [m.weight for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert all(w.abs().max() <= 0.1 for w in weights)  # truncated at two std (0.05)
    with pytest.raises(OptbenchError, match="square single-channel images"):
        Conv2c2d(11, 1)


def test_target_directions():
    accuracy = Target("test_accuracy", 0.97, "max")
    loss = Target("test_loss", 1e-3, "min")
    assert accuracy.met(0.97) and not accuracy.met(0.9699) and not accuracy.met(math.nan)
    assert loss.met(1e-3) and loss.met(0.0) and not loss.met(0.0011)
    assert str(accuracy) == "test_accuracy >= 0.97" and str(loss) == "test_loss <= 0.001"
    for bad in (
        {"metric": "speed", "threshold": 1, "mode": "max"},
        {"metric": "test_loss", "threshold": "x", "mode": "min"},
        {"metric": "test_loss", "threshold": 1, "mode": "down"},
    ):
        with pytest.raises(OptbenchError, match="is not a valid target"):
            check_target("t", bad)


def test_reached_target_at_is_the_first_evaluation_meeting_it():
    outcome = Outcome(
        status="completed",
        iterations_run=30,
        evaluations=[(10, Evaluation(0.5, 0.95)), (20, Evaluation(0.4, 0.971)), (30, Evaluation(0.3, 0.969))],
    )
    assert _results(outcome, Target("test_accuracy", 0.97, "max"))["reached_target_at"] == 20
    assert _results(outcome, Target("test_loss", 0.35, "min"))["reached_target_at"] == 30
    assert _results(outcome, Target("test_accuracy", 0.99, "max"))["reached_target_at"] is None


def test_run_job_needs_no_hydra_runtime(tmp_path):
    summary = run_job(compose("optimizer=scratch/adam", "task=beale", "iterations=5", "progress=false"), tmp_path)
    assert summary["optimizer"] == "scratch/adam" and summary["task"] == "beale"
    bare = compose("optimizer=adam", "iterations=5", "eval_every=5", "progress=false")
    OmegaConf.set_struct(bare, False)
    del bare["hydra"]  # a config without Hydra's node: names come from the config itself
    summary = run_job(bare, tmp_path / "bare")
    assert summary["optimizer"] == "adam" and summary["task"] == "mnist_mlp" and summary["status"] == "completed"


def test_command_line_overrides_beat_the_task_preset(tmp_path):
    summary = run(tmp_path, "task=rosenbrock", "iterations=7", "eval_every=7", "task.start=[0.5,0.5]")
    assert summary["iterations"] == 7 and pd.read_csv(tmp_path / "trajectory.csv").x[0] == 0.5
    summary = run(tmp_path / "mlp", "model.hidden=[50]", "iterations=3", "eval_every=3")
    assert summary["model_layers"] == [784, 50, 10]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["task=rosenbrock", "task.function=nosuch"],
            "task.function='nosuch' is not a known 2-D function: use one of rosenbrock",
        ),
        (["task=rosenbrock", "task.start=[1]"], "task.start=[1] must be two finite numbers"),
        (["task=rosenbrock", "task.noise=-1"], "task.noise=-1 must be a number >= 0"),
        (["task=beale", "task.target.metric=speed"], "task=beale: target="),
        (["task=beale", "epochs=2"], "epochs=2 needs a task with a training split"),
    ],
)
def test_bad_task_settings_are_one_clear_message(tmp_path, overrides, message):
    result = cli(*overrides, "eval_every=5", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_lists_every_task_with_its_description(tmp_path):
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for task in TASKS:
        description = OmegaConf.load(Path(config_dir()) / "task" / f"{task}.yaml").task.description
        assert f"{task} " in result.stdout and description in result.stdout
