"""Parallel and cluster launchers (the `parallel`, `slurm` and `ray` extras): a tiny sweep through each
gives the same numbers as Hydra's basic launcher, and jobs sharing the cores get their share of threads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_same_metrics, make_cfg
from omegaconf import OmegaConf

from optbench.job.job import objective
from optbench.runtime.threads import JOBS_AT_ONCE, JobsAtOnce, available_cores, jobs_at_once, launcher_threads

OPTBENCH = Path(sys.executable).with_name("optbench")
SWEEP = ["optimizer=sgd,adam", "iterations=30", "eval_every=15", "device=cpu", "auto_report=false"]


def sweep(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    result = subprocess.run(
        [str(OPTBENCH), "-m", *SWEEP, *args, f"hydra.sweep.dir={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def assert_same_runs(expected: Path, got: Path) -> None:
    for job in ("0", "1"):
        for name in ("train.csv", "test.csv"):
            assert_same_metrics(got / job / name, expected / job / name, f"job {job} {name}")


LAUNCHERS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", ["hydra.launcher.n_jobs=2"]),
    "submitit_local": (
        "hydra_plugins.hydra_submitit_launcher",
        ["hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"],
    ),
    "ray": ("hydra_plugins.hydra_ray_launcher", []),
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launcher_gives_the_basic_launchers_numbers(tmp_path, launcher):
    module, settings = LAUNCHERS[launcher]
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        pytest.skip(f"hydra/launcher={launcher} is not installed (its optbench extra)")
    basic = sweep(tmp_path, "basic", "threads=1")
    other = sweep(tmp_path, launcher, "threads=1", f"hydra/launcher={launcher}", *settings)
    assert_same_runs(basic, other)
    for job in ("0", "1"):
        assert json.loads((other / job / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_parallel_jobs_get_their_share_of_the_cores(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    out = sweep(tmp_path, "joblib", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert [json.loads((out / job / "summary.json").read_text())["threads"] for job in ("0", "1")] == [expected] * 2


def test_threads_per_job_follow_the_launcher(monkeypatch):
    """Each launcher's rule: joblib's n_jobs, submitit_local's jobs at once, SLURM's and Ray's allocation."""
    cores = available_cores()
    monkeypatch.delenv(JOBS_AT_ONCE, raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert launcher_threads(make_cfg().hydra.launcher) is None  # the basic launcher runs one job at a time
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    for n_jobs, share in ((2, cores // 2), (-1, 1), (cores * 4, 1)):
        assert launcher_threads(OmegaConf.create({"_target_": joblib, "n_jobs": n_jobs})) == max(1, share)
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert launcher_threads(OmegaConf.create({"_target_": local, "cpus_per_task": 3})) == 3  # given: it wins
    assert launcher_threads(OmegaConf.create({"_target_": local, "cpus_per_task": None})) == 1  # unknown: 1 each
    for at_once in (1, 2, 64):
        monkeypatch.setenv(JOBS_AT_ONCE, str(at_once))
        assert launcher_threads(OmegaConf.create({"_target_": local, "cpus_per_task": None})) == max(
            1, cores // at_once
        )
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher_threads(OmegaConf.create({"_target_": slurm, "cpus_per_task": 6})) == 6
    assert launcher_threads(OmegaConf.create({"_target_": slurm, "cpus_per_task": None})) == cores  # the affinity mask
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert launcher_threads(OmegaConf.create({"_target_": slurm, "cpus_per_task": None})) == 4
    ray = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert launcher_threads(OmegaConf.create({"_target_": ray, "ray": {"remote": {"num_cpus": 2}}})) == 2
    assert launcher_threads(OmegaConf.create({"_target_": ray, "ray": {"remote": {}}})) == 1  # outside a Ray worker


def test_the_basic_sweeper_announces_its_jobs_at_once(monkeypatch):
    """The callback counts the sweep's jobs (or max_batch_size of them) for submitit_local's jobs to share the cores."""
    monkeypatch.delenv(JOBS_AT_ONCE, raising=False)
    cfg = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {
                    "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "max_batch_size": None,
                },
                "overrides": {"task": ["optimizer=sgd,adam", "seed=0,1,2", "iterations=10"]},
            }
        }
    )
    JobsAtOnce().on_multirun_start(cfg)
    assert jobs_at_once() == 6
    cfg.hydra.sweeper.max_batch_size = 4
    JobsAtOnce().on_multirun_start(cfg)
    assert jobs_at_once() == 4


@pytest.mark.slow
def test_submitit_local_jobs_take_their_share_of_the_cores(tmp_path):
    """Four jobs at once on this machine's cores: each gets cores // 4 threads (at least one), not torch's default."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = tmp_path / "sweep"
    result = subprocess.run(
        [
            str(OPTBENCH),
            "-m",
            "optimizer=sgd,adam",
            "seed=0,1",
            "iterations=20",
            "eval_every=10",
            "device=cpu",
            "auto_report=false",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    threads = [json.loads((out / job / "summary.json").read_text())["threads"] for job in "0123"]
    assert threads == [max(1, available_cores() // 4)] * 4


def test_a_job_returns_its_targets_metric_or_none():
    """The return value every Hydra sweeper sees: the target's metric (its mode says the direction)."""
    accuracy = {
        "status": "completed",
        "target": {"metric": "test_accuracy", "threshold": 0.97, "mode": "max"},
        "final_test_accuracy": 0.95,
        "final_test_loss": 0.2,
    }
    loss = {**accuracy, "target": {"metric": "test_loss", "threshold": 1.9, "mode": "min"}}
    assert objective(accuracy) == 0.95 and objective(loss) == 0.2
    for status in ("diverged", "failed", "interrupted"):
        assert objective({**accuracy, "status": status}) is None
    assert objective({"status": "failed"}) is None  # failed before its task was known


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "vectorized"])
def test_sweepers_receive_the_target_metric(tmp_path, launcher):
    """Hydra's LogJobReturnCallback sees each job's return value: the final test loss for a loss target
    (quadratic_deep), the final test accuracy for an accuracy target, None for a diverged job."""
    cases = {
        "quadratic_deep": ("optimizer.lr=0.01,1e6", "final_test_loss"),
        "mnist_mlp": ("optimizer.lr=0.1,1e6", "final_test_accuracy"),
    }
    for task, (lrs, field) in cases.items():
        out = tmp_path / task
        extra = ["hydra/launcher=vectorized"] if launcher == "vectorized" else []
        result = subprocess.run(
            [
                str(OPTBENCH),
                "-m",
                f"task={task}",
                "optimizer=sgd",
                lrs,
                "iterations=30",
                "eval_every=10",
                "device=cpu",
                "auto_report=false",
                *extra,
                f"hydra.sweep.dir={out}",
                "+hydra.callbacks.log_return._target_=hydra.experimental.callbacks.LogJobReturnCallback",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summaries = [json.loads((out / job / "summary.json").read_text()) for job in ("0", "1")]
        assert summaries[0]["status"] == "completed" and summaries[1]["status"] == "diverged"
        log = result.stdout + result.stderr
        assert f"Succeeded with return value: {summaries[0][field]}" in log, log[-2000:]
        assert "Succeeded with return value: None" in log
