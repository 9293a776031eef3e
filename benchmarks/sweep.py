"""Speed of a sweep: Hydra's basic launcher (one job after another) against the vectorised launcher.

    python benchmarks/sweep.py                          # 8 optimizers x 3 seeds, 3000 iterations
    python benchmarks/sweep.py --seeds 1 3 8 --rounds 2 # K = 8, 24, 64 members

Both sides run in this process, interleaved round by round (machines here are noisy and shared),
and do what their launcher does per job: the basic side calls `run_job` for each job (loading the
data, training, writing its files), the vectorised side calls `run_group` once for all of them
(`max_members` is 64 by default, so K <= 64 is one group). Reported: the median time of each side,
their ratio, and whether every job's final test accuracy came out identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optbench.config.compose import compose  # noqa: E402
from optbench.data.datasets import default_root, ensure_mnist  # noqa: E402
from optbench.job.job import run_job  # noqa: E402
from optbench.sweeps.vectorized.engine import run_group  # noqa: E402

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adamax"]


def basic(cfgs: list, out: Path) -> tuple[float, list[float]]:
    """Seconds for the jobs one after another, and their final test accuracies."""
    started = time.perf_counter()
    accuracies = [run_job(cfg, out / f"basic{i}")["final_test_accuracy"] for i, cfg in enumerate(cfgs)]
    return time.perf_counter() - started, accuracies


def vectorized(cfgs: list, out: Path) -> tuple[float, list[float]]:
    """Seconds for the jobs as one vectorised group, and their final test accuracies."""
    started = time.perf_counter()
    summaries = run_group(cfgs, [out / f"vectorized{i}" for i in range(len(cfgs))])
    return time.perf_counter() - started, [s["final_test_accuracy"] for s in summaries]


def main() -> None:
    """Time both launchers for each sweep size and print one table row per size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", nargs="+", default=OPTIMIZERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[3], help="seeds per optimizer, one sweep size each")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="more overrides for every job, e.g. threads=1")
    args = parser.parse_args()
    ensure_mnist(default_root())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.iterations} iterations, "
        f"{args.rounds} interleaved round(s), optimizers: {' '.join(args.optimizers)}"
    )
    print("| K | basic s | vectorised s | ratio | identical accuracies |\n| --- | --- | --- | --- | --- |")
    for seeds in args.seeds:
        cfgs = [
            compose(
                f"optimizer={name}", f"seed={seed}", f"iterations={args.iterations}", "progress=false", *args.overrides
            )
            for name in args.optimizers
            for seed in range(seeds)
        ]
        times: dict[str, list[float]] = {"basic": [], "vectorized": []}
        same = True
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as out:
                seconds, expected = basic(cfgs, Path(out))
                times["basic"].append(seconds)
                seconds, got = vectorized(cfgs, Path(out))
                times["vectorized"].append(seconds)
                same &= expected == got
        b, v = statistics.median(times["basic"]), statistics.median(times["vectorized"])
        print(f"| {len(cfgs)} | {b:.1f} | {v:.1f} | {b / v:.2f}x | {'yes' if same else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
