"""The real command line, in subprocesses: single runs, sweeps, errors, the installed wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import REPO

OPTBENCH = Path(sys.executable).with_name("optbench")
SHORT = ["iterations=20", "eval_every=10", "device=cpu"]


def cli(*args: str, cwd: Path, command=None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env} if env else None
    return subprocess.run(
        [*(command or [str(OPTBENCH)]), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=environment
    )


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# What only a report, a figure or a tracker needs: a plain run loads none of it (the auto-report callback
# loads the report's libraries when a sweep ends, a tracker its package when logger= names one).
REPORT_AND_TRACKER_LIBRARIES = ("pandas", "matplotlib", "scipy", "plotly", "tensorboard", "mlflow", "wandb", "optuna")


def imported_packages(stderr: str) -> set[str]:
    """The top-level packages a process imported, from Python's `-X importtime` lines on its stderr."""
    lines = (line.rsplit("|", 1)[-1] for line in stderr.splitlines() if line.startswith("import time:"))
    return {name.strip().split(".")[0] for name in lines}


@pytest.mark.parametrize(
    ("task", "allowed"),
    # torchvision.datasets (MNIST's reader) imports PIL itself; the same libraries otherwise (slow tier)
    [("rosenbrock", ()), pytest.param("mnist_mlp", ("PIL",), marks=pytest.mark.slow)],
)
def test_a_single_run_from_any_directory_loads_no_report_image_or_tracker_library(tmp_path, task, allowed):
    run = tmp_path / "run"
    result = cli(
        f"task={task}",
        "optimizer=adam",
        *SHORT,
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"train.csv", "test.csv", "summary.json", ".hydra"} <= {p.name for p in run.iterdir()}
    assert summary(run)["status"] == "completed" and summary(run)["optimizer"] == "adam"
    assert "iteration 20" in (run / "optbench.log").read_text()  # logging goes to Hydra's log file
    loaded = imported_packages(result.stderr)
    assert {"torch", "hydra", "optbench"} <= loaded  # the import lines were read
    unwanted = {*REPORT_AND_TRACKER_LIBRARIES, "PIL"} - set(allowed)
    assert not unwanted & loaded, unwanted & loaded


@pytest.mark.slow
def test_default_output_dir_is_hydras(tmp_path):
    result = cli("iterations=5", "eval_every=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "outputs").glob("*/*/summary.json"))) == 1


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    result = cli(
        "optimizer=sgd",
        *SHORT,
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
        command=[sys.executable, "-m", "optbench.train"],
    )
    assert result.returncode == 0, result.stderr
    assert summary(tmp_path)["status"] == "completed"


@pytest.mark.slow
def test_sweep_goes_on_past_a_failed_job(tmp_path):
    result = cli(
        "-m", "optimizer=sgd,momentum", "optimizer.lr=0.1,-1", *SHORT, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    jobs = [d for d in tmp_path.iterdir() if d.name.isdigit()]
    statuses = sorted(summary(d)["status"] for d in jobs)
    assert statuses == ["completed", "completed", "failed", "failed"]
    failed = [summary(d) for d in jobs if summary(d)["status"] == "failed"]
    assert all("Invalid learning rate" in s["error"] for s in failed)
    assert (tmp_path / "report" / "summary.md").exists()  # the automatic report still ran


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_one_clear_message(tmp_path):
    result = cli(*SHORT, "device=cuda", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert "device=cuda was requested but torch sees no CUDA GPU" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert summary(tmp_path)["status"] == "failed"


@pytest.mark.slow
def test_unknown_key_is_rejected_without_traceback(tmp_path):
    result = cli("optimizer.lrr=1", cwd=tmp_path)
    assert result.returncode == 1
    assert "lrr" in result.stderr and "Traceback" not in result.stderr


def test_version(tmp_path):
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("optbench ")


@pytest.mark.slow
def test_wheel_ships_configs_and_data_and_runs_elsewhere(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("optbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "optbench/configs/config.yaml" in names and "optbench/configs/optimizer/adam.yaml" in names
    assert "optbench/resources/mnist/train-images-idx3-ubyte.gz" in names
    # the tune sweeper: its plugin module (found by Hydra under hydra_plugins/) and its config
    assert "hydra_plugins/optbench_tune/tune_sweeper.py" in names and "hydra_plugins/__init__.py" not in names
    assert "optbench/configs/hydra/sweeper/tune.yaml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv.pop(1)); import optbench.train as t; "
            "print('from', t.__file__, file=sys.stderr); t.main()",
            str(site),
            "optimizer=adam",
            "iterations=5",
            "eval_every=5",
            f"hydra.run.dir={elsewhere / 'run'}",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"from {site}" in result.stderr
    assert summary(elsewhere / "run")["status"] == "completed"


USER_OPTIMIZER = '''import torch


class SignSGD(torch.optim.Optimizer):
    """sign(grad) steps: an optimizer of the user's own package."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
'''


@pytest.mark.slow
def test_a_users_own_optimizer_and_task_from_an_installed_wheel(tmp_path):
    """A folder of the user's configs (`--config-dir`) with an optimizer class from the user's own package
    and a task of their own, run against the wheel-installed optbench from a temporary folder: the run
    completes under the user's names, --help lists the user's task, and a user config named like a
    shipped one is reported as hidden (optbench's configs are searched first)."""
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    site = tmp_path / "site"
    zipfile.ZipFile(next((tmp_path / "dist").glob("optbench-*.whl"))).extractall(site)
    work = tmp_path / "work"
    (work / "mypkg").mkdir(parents=True)
    (work / "mypkg" / "__init__.py").write_text(USER_OPTIMIZER)
    (work / "myconf" / "optimizer").mkdir(parents=True)
    (work / "myconf" / "task").mkdir()
    (work / "myconf" / "optimizer" / "signsgd.yaml").write_text("_target_: mypkg.SignSGD\n_partial_: true\nlr: 0.001\n")
    (work / "myconf" / "optimizer" / "sgd.yaml").write_text("_target_: torch.optim.SGD\n_partial_: true\nlr: 0.5\n")
    shipped = (REPO / "configs" / "task" / "rosenbrock.yaml").read_text()
    (work / "myconf" / "task" / "myvalley.yaml").write_text(
        shipped.replace("name: rosenbrock", "name: myvalley").replace(
            'description: "Rosenbrock', 'description: "Mine: Rosenbrock'
        )
    )

    def optbench_from_wheel(*args: str) -> subprocess.CompletedProcess:
        code = "import sys; sys.path[:0] = [sys.argv.pop(1), '.']; import optbench.cli as c; sys.argv[0] = 'optbench'; c.main()"
        return subprocess.run(
            [sys.executable, "-c", code, str(site), *args], cwd=work, capture_output=True, text=True, timeout=300
        )

    result = optbench_from_wheel(
        "--config-dir", "myconf", "task=myvalley", "optimizer=signsgd", "iterations=20", f"hydra.run.dir={work / 'run'}"
    )
    assert result.returncode == 0, result.stderr
    assert summary(work / "run")["optimizer"] == "signsgd" and summary(work / "run")["task"] == "myvalley"
    assert "hidden by optbench's own config" in result.stderr and "myconf/optimizer/sgd.yaml" in result.stderr
    helped = optbench_from_wheel("--config-dir", "myconf", "--help")
    assert helped.returncode == 0 and "myvalley" in helped.stdout and "Mine: Rosenbrock" in helped.stdout
    assert "signsgd" in helped.stdout  # Hydra's own list of the optimizer group's options
    shadowed = optbench_from_wheel("--config-dir", "myconf", "optimizer=sgd", "--cfg", "job")
    assert "lr: 0.1" in shadowed.stdout  # the shipped sgd, not the user's lr 0.5
