"""What an experiment tracker costs a run: the same job with logger=none, tensorboard, mlflow, wandb.

    python benchmarks/trackers.py                      # the default task, 3000 iterations, 3 rounds
    python benchmarks/trackers.py --iterations 1000 --rounds 5

Every side runs in this process, interleaved round by round after one untimed warm-up round (the
first use of a tracker imports its package). Each side is a whole `run_job`: set-up, training,
flushes with the tracker's calls, and the tracker's start and finish. Reported per logger: the
median seconds, the ratio to logger=none, the seconds added, and whether the run's numbers came out
identical to logger=none (a tracker must only watch).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
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
from optbench.runtime.device import cpu_name  # noqa: E402

LOGGERS = ("none", "tensorboard", "mlflow", "wandb")


def timed(logger: str, iterations: int, out: Path) -> tuple[float, float | None]:
    """Seconds for one whole run with `logger`, and its final test accuracy."""
    cfg = compose(f"logger={logger}", f"iterations={iterations}", "progress=false", "device=cpu")
    started = time.perf_counter()
    summary = run_job(cfg, out)
    return time.perf_counter() - started, summary["final_test_accuracy"]


def main() -> None:
    """Time a run with each installed tracker and print one table row per logger."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_SILENT", "true")
    ensure_mnist(default_root())
    loggers = [name for name in LOGGERS if name == "none" or importlib.util.find_spec(name) is not None]
    print(
        f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.iterations} iterations "
        f"(eval every 500), {args.rounds} interleaved round(s) after a warm-up round"
    )
    times: dict[str, list[float]] = {name: [] for name in loggers}
    accuracies: dict[str, set] = {name: set() for name in loggers}
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds + 1):
            for name in loggers:
                seconds, accuracy = timed(name, args.iterations, Path(out) / f"{name}{round_}")
                accuracies[name].add(accuracy)
                if round_:
                    times[name].append(seconds)
    base = statistics.median(times["none"])
    print(
        "| logger | median s | ratio to none | added s | numbers identical to none |\n| --- | --- | --- | --- | --- |"
    )
    for name in loggers:
        median = statistics.median(times[name])
        print(
            f"| {name} | {median:.2f} | {median / base:.3f}x | {median - base:+.2f} | "
            f"{'yes' if accuracies[name] == accuracies['none'] else 'no'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
