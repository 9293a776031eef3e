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
from omegaconf import OmegaConf

from conftest import assert_same_metrics, make_cfg
from optbench.train import launcher_threads

OPTBENCH = Path(sys.executable).with_name("optbench")
SWEEP = ["optimizer=sgd,adam", "iterations=30", "eval_every=15", "device=cpu", "auto_report=false"]


def sweep(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    result = subprocess.run([str(OPTBENCH), "-m", *SWEEP, *args, f"hydra.sweep.dir={out}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def assert_same_runs(expected: Path, got: Path) -> None:
    for job in ("0", "1"):
        for name in ("train.csv", "test.csv"):
            assert_same_metrics(got / job / name, expected / job / name, f"job {job} {name}")


LAUNCHERS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", ["hydra.launcher.n_jobs=2"]),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", ["hydra.launcher.cpus_per_task=1",
                                                                  "hydra.launcher.timeout_min=10"]),
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


def test_threads_per_job_follow_the_launcher():
    cores = os.cpu_count() or 1
    assert launcher_threads(make_cfg().hydra.launcher) is None  # the basic launcher runs one job at a time
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    for n_jobs, share in ((2, cores // 2), (-1, 1), (cores * 4, 1)):
        assert launcher_threads(OmegaConf.create({"_target_": joblib, "n_jobs": n_jobs})) == max(1, share)
    submitit = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert launcher_threads(OmegaConf.create({"_target_": submitit, "cpus_per_task": 3})) == 3
    assert launcher_threads(OmegaConf.create({"_target_": submitit, "cpus_per_task": None})) is None
