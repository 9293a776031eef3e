"""One sweep through every launcher: wall seconds of the whole `optbench -m` command, side by side.

    bash tests/cluster/up.sh                    # a one-node SLURM cluster and a Ray head on this machine
    python benchmarks/launchers.py --rounds 3   # basic, joblib, submitit_slurm, ray, vectorized; interleaved

The sweep is the cluster tests' (`optimizer=sgd,adam seed=0,1`, 300 iterations of the default MLP, one thread
per job); each launcher runs it in a fresh sweep dir, round after round in turn (machines here drift), and the
table gives the median wall time of the whole command, what a user waits for. SLURM and Ray are skipped, with
the reason, where their cluster does not answer. Each job's summary.json names where it ran (`slurm_job_id`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPTBENCH = str(Path(sys.executable).with_name("optbench"))
STATE = Path(os.environ.get("OPTBENCH_CLUSTER_STATE", "/tmp/optbench-cluster"))
SWEEP = ["optimizer=sgd,adam", "seed=0,1", "iterations=300", "eval_every=100", "device=cpu", "threads=1"]
SWEEP += ["auto_report=false", "progress=false"]
LAUNCHERS = {
    "basic": [],
    "joblib (n_jobs=2)": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_slurm": ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1"],
    "ray (head on 127.0.0.1)": ["hydra/launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:6379"],
    "vectorized": ["hydra/launcher=vectorized"],
}


def environment() -> dict[str, str]:
    """This process's environment, with the test cluster's SLURM config."""
    return {**os.environ, "SLURM_CONF": str(STATE / "slurm.conf")}


def unavailable(name: str) -> str | None:
    """Why launcher `name` cannot run here, or None."""
    if name == "submitit_slurm":
        ping = subprocess.run(["scontrol", "ping"], env=environment(), capture_output=True, text=True)
        return None if "UP" in ping.stdout else "no SLURM cluster answers (bash tests/cluster/up.sh)"
    if name.startswith("ray"):
        ray = Path(sys.executable).with_name("ray")
        status = subprocess.run([ray, "status", "--address", "127.0.0.1:6379"], capture_output=True)
        return None if status.returncode == 0 else "no Ray head at 127.0.0.1:6379 (bash tests/cluster/up.sh)"
    return None


def sweep_once(overrides: list[str]) -> tuple[float, list[dict]]:
    """Wall seconds of one whole sweep, and its jobs' summaries."""
    with tempfile.TemporaryDirectory() as where:
        started = time.perf_counter()
        subprocess.run(
            [OPTBENCH, "-m", *overrides, *SWEEP, f"hydra.sweep.dir={where}"],
            env=environment(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=where,
        )
        seconds = time.perf_counter() - started
        jobs = sorted(Path(where).glob("[0-9]*/summary.json"), key=lambda p: int(p.parent.name))
        return seconds, [json.loads(path.read_text()) for path in jobs]


def main() -> None:
    """Print one row per launcher: median wall seconds, the ratio to the basic launcher, where the jobs ran."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown CPU",
    )
    skipped = {name: reason for name in LAUNCHERS if (reason := unavailable(name))}
    times: dict[str, list[float]] = {name: [] for name in LAUNCHERS if name not in skipped}
    ids: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name in times:
            seconds, summaries = sweep_once(LAUNCHERS[name])
            assert [s["status"] for s in summaries] == ["completed"] * 4, (name, summaries)
            times[name].append(seconds)
            ids[name] = [str(s.get("slurm_job_id") or "") for s in summaries]
    print(f"CPU: {cpu} ({os.cpu_count()} cores); 4 jobs; medians of {args.rounds} interleaved round(s)")
    print("| launcher | wall s (median) | min-max | x basic | SLURM job ids (last round) |")
    print("| --- | --- | --- | --- | --- |")
    base = statistics.median(times["basic"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median:.1f} | {min(values):.1f}-{max(values):.1f} | {median / base:.2f} | "
            f"{' '.join(filter(None, ids[name])) or '-'} |"
        )
    for name, reason in skipped.items():
        print(f"| {name} | skipped: {reason} | | | |")


if __name__ == "__main__":
    main()
