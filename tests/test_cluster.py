"""Sweeps on real clusters: a one-node SLURM cluster and a Ray head on this machine, which `bash tests/cluster/up.sh`
brings up (CI does). Without them these tests skip, saying why; `pytest -m cluster` runs only them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

OPTBENCH = Path(sys.executable).with_name("optbench")
STATE = Path(os.environ.get("OPTBENCH_CLUSTER_STATE", "/tmp/optbench-cluster"))
RAY_HEAD = "127.0.0.1:6379"
pytestmark = [pytest.mark.cluster, pytest.mark.slow]
SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"]
RAY = ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={RAY_HEAD}"]


def cluster(name: str) -> dict[str, str]:
    """The environment a command needs to reach cluster `name` (slurm, ray); skip, saying why, where there is none."""
    reason = STATE / f"{name}.skip"
    if reason.exists():
        pytest.skip(f"no {name} cluster: {reason.read_text().strip()} (tests/cluster/up.sh)")
    env = dict(os.environ)
    if name == "slurm":
        env["SLURM_CONF"] = str(STATE / "slurm.conf")
        ping = (
            subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True)
            if (STATE / "slurm.conf").exists()
            else None
        )
        if ping is None or "UP" not in ping.stdout:
            pytest.skip("no SLURM cluster answers here: bring one up with `bash tests/cluster/up.sh`")
    else:
        status = subprocess.run(
            [Path(sys.executable).with_name("ray"), "status", "--address", RAY_HEAD], capture_output=True
        )
        if status.returncode:
            pytest.skip(f"no Ray head answers at {RAY_HEAD}: bring one up with `bash tests/cluster/up.sh`")
    return env


def optbench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run `optbench args`, its output (stdout and stderr) in one text."""
    return subprocess.run(
        [OPTBENCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
    )


def summaries(sweep: Path, pattern: str = "[0-9]*") -> list[dict]:
    """The summaries of a sweep's jobs, in job order."""
    paths = sorted(sweep.glob(f"{pattern}/summary.json"), key=lambda p: int(p.parent.name))
    return [json.loads(path.read_text()) for path in paths]


def training(run_dir: Path, timeout: float = 300) -> None:
    """Wait until the run in `run_dir` has written training rows."""
    deadline = time.monotonic() + timeout
    train = run_dir / "train.csv"
    while not (train.exists() and len(train.read_text().splitlines()) > 1):
        assert time.monotonic() < deadline, f"{run_dir} never started training"
        time.sleep(0.5)


def test_every_job_of_a_sweep_is_a_slurm_job_of_one_array(tmp_path):
    env = cluster("slurm")
    done = optbench(
        env,
        "-m",
        *SLURM,
        "optimizer=sgd,adam",
        "seed=0,1",
        "iterations=300",
        "eval_every=100",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    jobs = summaries(tmp_path)
    assert [s["status"] for s in jobs] == ["completed"] * 4
    ids = [s["slurm_job_id"] for s in jobs]
    assert all(re.fullmatch(r"\d+_\d+", i) for i in ids) and len({i.split("_")[0] for i in ids}) == 1  # one job array
    assert sorted(int(i.split("_")[1]) for i in ids) == [0, 1, 2, 3]
    assert [s["threads"] for s in jobs] == [1] * 4  # its allocation: cpus_per_task, not the node's cores
    assert all((tmp_path / ".submitit" / i / f"{i}_0_log.out").exists() for i in ids)  # SLURM's logs, per job
    assert (tmp_path / "report" / "report.html").exists()  # the automatic report, in the sweep dir


def test_a_cancelled_job_is_named_and_resume_redoes_only_it(tmp_path):
    env = cluster("slurm")
    # job 0 trains long enough to be cancelled mid-run, job 1 briefly
    args = ["-m", *SLURM, "iterations=15000,300", "eval_every=250", f"hydra.sweep.dir={tmp_path}"]
    sweep = subprocess.Popen([OPTBENCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    training(tmp_path / "0")
    cancelled = json.loads((tmp_path / "0" / "summary.json").read_text())["slurm_job_id"]
    subprocess.run(["scancel", cancelled], env=env, check=True)
    out, _ = sweep.communicate(timeout=900)
    assert sweep.returncode == 0, out[-3000:]
    first, second = summaries(tmp_path)
    assert (first["status"], first["interrupted_by"], second["status"]) == ("interrupted", "SIGTERM", "completed")
    assert f"SLURM job {cancelled}): interrupted, SIGTERM" in out and "resume=true" in out
    again = optbench(env, *args, "resume=true")
    assert again.returncode == 0, again.stdout[-3000:]
    redone, kept = summaries(tmp_path)
    assert redone["status"] == "completed" and redone["slurm_job_id"] != cancelled
    assert kept == second  # skipped: not run again


def test_the_tune_sweeper_runs_both_stages_on_slurm(tmp_path):
    env = cluster("slurm")
    done = optbench(
        env,
        "-m",
        "hydra/sweeper=tune",
        *SLURM,
        "task=rosenbrock",
        "optimizer=sgd",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
        "hydra.sweeper.trials=3",
        "hydra.sweeper.seeds=2",
        "iterations=50",
        "eval_every=25",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    trials, reruns = summaries(tmp_path / "tuning"), summaries(tmp_path)
    assert len(trials) == 3 and len(reruns) == 2
    stage_ids = [{s["slurm_job_id"].split("_")[0] for s in stage} for stage in (trials, reruns)]
    assert all(len(ids) == 1 for ids in stage_ids) and stage_ids[0] != stage_ids[1]  # one job array per stage
    assert (tmp_path / "tuning.csv").exists()


def open_by(path: Path) -> int:
    """The pid of the process holding `path` open (a run keeps its train.csv open while it trains)."""
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.path.realpath(fd) == str(path) for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:
            continue
    raise AssertionError(f"no process holds {path} open")


def test_a_sweep_on_the_ray_cluster_and_a_killed_worker(tmp_path):
    env = cluster("ray")
    args = ["-m", *RAY, "iterations=15000,300", "eval_every=250", "threads=1", f"hydra.sweep.dir={tmp_path}"]
    sweep = subprocess.Popen([OPTBENCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    training(tmp_path / "0")
    os.kill(open_by((tmp_path / "0" / "train.csv").resolve()), signal.SIGTERM)  # `kill` the worker training job 0
    out, _ = sweep.communicate(timeout=900)
    assert sweep.returncode == 0, out[-3000:]
    first, second = summaries(tmp_path)
    assert (first["status"], first["interrupted_by"], second["status"]) == ("interrupted", "SIGTERM", "completed")
    assert "1 of the sweep's 2 jobs did not finish" in out and "resume=true" in out
    again = optbench(env, *args, "resume=true")
    assert again.returncode == 0, again.stdout[-3000:]
    redone, kept = summaries(tmp_path)
    assert redone["status"] == "completed" and kept == second
