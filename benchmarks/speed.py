"""Speed of one optbench run against the notebook loop, measured back to back in one process.

    python benchmarks/speed.py                       # sgd and adam, 3000 iterations, 3 rounds
    python benchmarks/speed.py --optimizers momentum --repeats 5

Machines here are noisy and shared, so the two are interleaved round by round and the ratio of
medians is reported (plus the ratio of the fastest runs). Both sides are timed from "data files on
disk" to "3000 iterations done and evaluated": the notebook builds its torchvision datasets and
runs its DataLoader loop; optbench runs its whole job (load tensors, train, write CSVs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.notebook_loop import notebook_run  # noqa: E402
from optbench.config import compose  # noqa: E402
from optbench.data import default_root, ensure_mnist  # noqa: E402
from optbench.train import run_job  # noqa: E402


def time_optbench(optimizer: str, iterations: int, extra: list[str]) -> tuple[float, float]:
    """Seconds for one whole optbench job, and its final test accuracy (percent)."""
    cfg = compose(f"optimizer={optimizer}", f"iterations={iterations}", "progress=false", *extra)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = run_job(cfg, Path(out))
        return time.perf_counter() - started, 100 * summary["final_test_accuracy"]


def time_notebook(optimizer: str, iterations: int) -> tuple[float, float]:
    """Seconds for the notebook loop with the same optimizer config, and its final test accuracy."""
    factory = instantiate(compose(f"optimizer={optimizer}").optimizer, _convert_="all")
    started = time.perf_counter()
    result = notebook_run(factory, default_root(), iterations=iterations)
    return time.perf_counter() - started, result.test_accuracy[-1]


def main() -> None:
    """Run the comparison and print one line per optimizer."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optbench-overrides", nargs="*", default=[], help="extra overrides, e.g. flush_denormal=false")
    args = parser.parse_args()
    ensure_mnist(default_root())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.iterations} iterations, "
          f"{args.repeats} interleaved rounds")
    for name in args.optimizers:
        notebook, optbench = [], []
        for _ in range(args.repeats):
            seconds, nb_acc = time_notebook(name, args.iterations)
            notebook.append(seconds)
            seconds, ob_acc = time_optbench(name, args.iterations, args.optbench_overrides)
            optbench.append(seconds)
        print(f"{name:10s} notebook {statistics.median(notebook):6.2f}s  optbench {statistics.median(optbench):5.2f}s  "
              f"ratio(median) {statistics.median(notebook) / statistics.median(optbench):5.1f}x  "
              f"ratio(best) {min(notebook) / min(optbench):5.1f}x  final acc {nb_acc:.2f} vs {ob_acc:.2f}")


if __name__ == "__main__":
    main()
