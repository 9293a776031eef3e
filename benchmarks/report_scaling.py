"""How `optbench report` grows with the runs it reads: time and peak memory over 100, 1,000 and 10,000 runs.

    python benchmarks/report_scaling.py make /tmp/scaling          # the three sweeps (10,000 runs: ~1 h, 1 core)
    python benchmarks/report_scaling.py measure /tmp/scaling       # optbench report on each, --rounds times

The runs are real: MNIST's 784-100-10 MLP, 50 iterations at batch 100, evaluated at 25 and 50, made by the
vectorised launcher with one thread. A sweep of N runs is 10 seeds of N/10 (optimizer, lr) groups, what a
tuned comparison looks like: 100 = 2 optimizers x 5 lrs, 1,000 = 10 x 10, 10,000 = 10 x 100 (one sweep dir
per optimizer, under one folder). `measure` runs `optbench report` as a user does, in a subprocess, and
reads its wall time and peak resident memory (`os.wait4`); the stages' split comes from `--profile`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPTBENCH = str(Path(sys.executable).with_name("optbench"))
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "radam"]
BUDGET = ["iterations=50", "eval_every=25", "device=cpu", "threads=1", "auto_report=false", "progress=false"]
SIZES = {100: (2, 5), 1000: (10, 10), 10000: (10, 100)}  # runs: (optimizers, lrs); 10 seeds each


def lrs(count: int) -> str:
    """`count` learning rates spread evenly in log space over [1e-4, 1e-1], as a sweep override's list."""
    return ",".join(f"{10 ** (-4 + 3 * i / max(1, count - 1)):.4g}" for i in range(count))


def make(root: Path, sizes: list[int]) -> None:
    """Write the sweeps of `sizes` runs under `root/<size>/` (skipping a sweep dir already complete)."""
    for size in sizes:
        optimizers, count = SIZES[size]
        per_sweep = [[f"optimizer={name}"] for name in OPTIMIZERS[:optimizers]]
        if size < 10000:  # one sweep over every optimizer
            per_sweep = [[f"optimizer={','.join(OPTIMIZERS[:optimizers])}"]]
        for sweep in per_sweep:
            where = root / str(size) / sweep[0].split("=")[1].replace(",", "_")
            if (where / "multirun.yaml").exists() and sum(1 for _ in where.glob("*/summary.json")) * len(
                per_sweep
            ) == size:
                continue
            started = time.perf_counter()
            command = [OPTBENCH, "-m", "hydra/launcher=vectorized", *sweep, f"optimizer.lr={lrs(count)}"]
            command += ["seed=" + ",".join(map(str, range(10))), *BUDGET, f"hydra.sweep.dir={where}"]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"{where}: {time.perf_counter() - started:.0f} s", flush=True)


def report_once(path: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one `optbench report path` in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        process = subprocess.Popen([OPTBENCH, "report", str(path), "-o", out, *extra], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"optbench report {path} failed with status {status}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def measure(root: Path, sizes: list[int], rounds: int) -> None:
    """Print one table row per size: runs, groups, median seconds, peak MB, seconds per 1,000 runs."""
    print(f"CPU: {cpu()}; medians of {rounds} round(s), sizes interleaved")
    results: dict[int, list[tuple[float, float]]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            results[size].append(report_once(root / str(size), []))
    print("| runs | seconds | peak MB | seconds per 1,000 runs |\n| --- | --- | --- | --- |")
    for size, rows in results.items():
        seconds, peak = statistics.median(r[0] for r in rows), max(r[1] for r in rows)
        print(f"| {size:,} | {seconds:.1f} | {peak:.0f} | {1000 * seconds / size:.1f} |")


def cpu() -> str:
    """The CPU's model name, for the figures."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    """`make` the sweeps or `measure` the report over them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("make", "measure"))
    parser.add_argument("root", type=Path)
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.action == "make":
        make(args.root, args.sizes)
    else:
        measure(args.root, args.sizes, args.rounds)


if __name__ == "__main__":
    main()
