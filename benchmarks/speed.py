"""Speed of one optbench run against the notebook loop and against the arithmetic floor, measured
back to back in one process.

    python benchmarks/speed.py                       # sgd and adam, 3000 iterations, 3 rounds
    python benchmarks/speed.py --optimizers momentum --repeats 5

Machines here are noisy and shared, so the sides are interleaved round by round and the ratio of
medians is reported (plus the ratio of the fastest runs). The notebook and optbench are timed from
"data files on disk" to "3000 iterations done and evaluated": the notebook builds its torchvision
datasets and runs its DataLoader loop; optbench runs its whole job (load tensors, train, write CSVs).

The floor is the arithmetic alone: the same matrix products a run computes (per step the MLP's two
forward products and three backward products at the batch size; per evaluation the two products over
the 10,000 test images), on preallocated tensors, with no optimizer, loop bookkeeping, data loading,
autograd or logging. A loop's cost moves several-fold between CPUs (the notebooks' loop took 55 s on
one 2-core machine here and 10 s on another); its multiple of the floor moves much less, so that is
the figure to compare across machines. Every line names the CPU it ran on.
"""

from __future__ import annotations

import argparse
import platform
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


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), and how many cores torch uses."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


@torch.no_grad()
def time_floor(iterations: int, eval_every: int, batch_size: int = 100, widths: tuple[int, ...] = (784, 100, 10),
               test_size: int = 10_000) -> float:
    """Seconds for the matrix products of `iterations` MLP steps and their evaluations, nothing else."""
    n_in, hidden, n_out = widths
    x, w1, b1 = torch.rand(batch_size, n_in), torch.randn(hidden, n_in), torch.randn(hidden)
    w2, b2 = torch.randn(n_out, hidden), torch.randn(n_out)
    h, out, g_h, g_w1, g_w2 = (torch.empty(batch_size, hidden), torch.empty(batch_size, n_out),
                               torch.empty(batch_size, hidden), torch.empty(hidden, n_in), torch.empty(n_out, hidden))
    test = torch.rand(test_size, n_in)
    test_h, test_out = torch.empty(test_size, hidden), torch.empty(test_size, n_out)
    evaluations = iterations // eval_every + (iterations % eval_every > 0)
    started = time.perf_counter()
    for _ in range(iterations):
        torch.addmm(b1, x, w1.t(), out=h)          # forward, layer 1
        torch.addmm(b2, h, w2.t(), out=out)        # forward, layer 2
        torch.mm(out.t(), h, out=g_w2)             # backward: weight gradient of layer 2
        torch.mm(out, w2, out=g_h)                 # backward: gradient into the hidden layer
        torch.mm(g_h.t(), x, out=g_w1)             # backward: weight gradient of layer 1
    for _ in range(evaluations):
        torch.addmm(b1, test, w1.t(), out=test_h)
        torch.addmm(b2, test_h, w2.t(), out=test_out)
    return time.perf_counter() - started


def time_optbench(optimizer: str, iterations: int, extra: list[str]) -> tuple[float, float, float]:
    """Seconds for one whole optbench job, its training seconds (summary.json), and its final test accuracy (percent)."""
    cfg = compose(f"optimizer={optimizer}", f"iterations={iterations}", "progress=false", *extra)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = run_job(cfg, Path(out))
        return time.perf_counter() - started, summary["train_seconds"], 100 * summary["final_test_accuracy"]


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
    print(f"{cpu_name()}; torch {torch.__version__}; {args.iterations} iterations, {args.repeats} interleaved rounds")
    eval_every = compose().eval_every
    for name in args.optimizers:
        notebook, optbench, training, floor = [], [], [], []
        for _ in range(args.repeats):
            seconds, nb_acc = time_notebook(name, args.iterations)
            notebook.append(seconds)
            seconds, train_seconds, ob_acc = time_optbench(name, args.iterations, args.optbench_overrides)
            optbench.append(seconds)
            training.append(train_seconds)
            floor.append(time_floor(args.iterations, eval_every))
        median = {side: statistics.median(times) for side, times in
                  (("notebook", notebook), ("optbench", optbench), ("training", training), ("floor", floor))}
        print(f"{name:10s} notebook {median['notebook']:6.2f}s  optbench {median['optbench']:5.2f}s "
              f"(training {median['training']:5.2f}s)  floor {median['floor']:5.2f}s  |  "
              f"notebook/optbench {median['notebook'] / median['optbench']:5.1f}x (best {min(notebook) / min(optbench):.1f}x)  "
              f"training/floor {median['training'] / median['floor']:4.2f}x  notebook/floor "
              f"{median['notebook'] / median['floor']:5.1f}x  |  final acc {nb_acc:.2f} vs {ob_acc:.2f}")


if __name__ == "__main__":
    main()
