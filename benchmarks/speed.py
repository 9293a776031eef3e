"""Speed of one optbench run against the notebook loop and against the arithmetic floor, measured
back to back in one process.

    python benchmarks/speed.py                       # sgd and adam, 3000 iterations, 3 rounds
    python benchmarks/speed.py --optimizers momentum --repeats 5
    python benchmarks/speed.py --device cuda         # all three sides on the GPU

Machines here are noisy and shared, so the sides are interleaved round by round and the ratio of
medians is reported (plus the ratio of the fastest runs). The notebook and optbench are timed from
"data files on disk" to "3000 iterations done and evaluated": the notebook builds its torchvision
datasets and runs its DataLoader loop; optbench runs its whole job (load tensors, train, write CSVs).

The floor is the arithmetic alone: the same matrix products a run computes (per step the MLP's two
forward products and three backward products at the batch size; per evaluation the two products over
the 10,000 test images), on preallocated tensors, with no optimizer, loop bookkeeping, data loading,
autograd or logging. optbench's training seconds (summary.json: the first, warm-up step and the
evaluations left out) are compared with the step products alone. A loop's cost moves several-fold between CPUs (the notebooks' loop took 55 s on
one 2-core machine here and 10 s on another); its multiple of the floor moves much less, so that is
the figure to compare across machines. Every line names the CPU (and GPU) it ran on. `--device`
puts all three sides on one device: the notebook loop then moves each batch there, as a notebook does.
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
from optbench.config.compose import compose  # noqa: E402
from optbench.data.datasets import default_root, ensure_mnist  # noqa: E402
from optbench.job.job import run_job  # noqa: E402
from optbench.runtime.device import cpu_name, hardware, resolve_device  # noqa: E402


def machine(device: torch.device) -> str:
    """The CPU's model name and the threads torch uses, and the GPU's name when `device` is one."""
    gpu = f"; {hardware(device)['device_name']}" if device.type == "cuda" else ""
    return f"{cpu_name()}, {torch.get_num_threads()} threads{gpu}"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU's), so that a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_floor(
    iterations: int,
    eval_every: int,
    batch_size: int = 100,
    widths: tuple[int, ...] = (784, 100, 10),
    test_size: int = 10_000,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Seconds for the matrix products of `iterations` MLP steps, and of their evaluations: nothing else."""
    device = torch.device(device)
    n_in, hidden, n_out = widths
    kw = {"device": device}
    x, w1, b1 = torch.rand(batch_size, n_in, **kw), torch.randn(hidden, n_in, **kw), torch.randn(hidden, **kw)
    w2, b2 = torch.randn(n_out, hidden, **kw), torch.randn(n_out, **kw)
    h, out, g_h, g_w1, g_w2 = (
        torch.empty(batch_size, hidden, **kw),
        torch.empty(batch_size, n_out, **kw),
        torch.empty(batch_size, hidden, **kw),
        torch.empty(hidden, n_in, **kw),
        torch.empty(n_out, hidden, **kw),
    )
    test = torch.rand(test_size, n_in, **kw)
    test_h, test_out = torch.empty(test_size, hidden, **kw), torch.empty(test_size, n_out, **kw)
    evaluations = iterations // eval_every + (iterations % eval_every > 0)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(iterations):
        torch.addmm(b1, x, w1.t(), out=h)  # forward, layer 1
        torch.addmm(b2, h, w2.t(), out=out)  # forward, layer 2
        torch.mm(out.t(), h, out=g_w2)  # backward: weight gradient of layer 2
        torch.mm(out, w2, out=g_h)  # backward: gradient into the hidden layer
        torch.mm(g_h.t(), x, out=g_w1)  # backward: weight gradient of layer 1
    synchronize(device)
    steps = time.perf_counter() - started
    for _ in range(evaluations):
        torch.addmm(b1, test, w1.t(), out=test_h)
        torch.addmm(b2, test_h, w2.t(), out=test_out)
    synchronize(device)
    return steps, time.perf_counter() - started - steps


def time_optbench(optimizer: str, iterations: int, extra: list[str]) -> tuple[float, float, float]:
    """Seconds for one whole optbench job, its training seconds (summary.json), and its final test accuracy (percent)."""
    cfg = compose(f"optimizer={optimizer}", f"iterations={iterations}", "progress=false", *extra)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = run_job(cfg, Path(out))
        return time.perf_counter() - started, summary["train_seconds"], 100 * summary["final_test_accuracy"]


def mnist_root() -> Path:
    """The folder optbench's config reads MNIST from (dataset.root: $OPTBENCH_DATA, else the cache), unpacked
    there, so the notebook loop reads the same files as optbench."""
    root = Path(compose().dataset.root or default_root())
    ensure_mnist(root)
    return root


def time_notebook(optimizer: str, iterations: int, device: torch.device) -> tuple[float, float]:
    """Seconds for the notebook loop with the same optimizer config on `device`, and its final test accuracy."""
    factory = instantiate(compose(f"optimizer={optimizer}").optimizer, _convert_="all")
    root = mnist_root()
    started = time.perf_counter()
    result = notebook_run(factory, root, iterations=iterations, device=device)
    return time.perf_counter() - started, result.test_accuracy[-1]


def main() -> None:
    """Run the comparison and print one line per optimizer."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--optbench-overrides", nargs="*", default=[], help="extra overrides, e.g. flush_denormal=false"
    )
    parser.add_argument("--device", default="cpu", help="where all three sides run: cpu (default), cuda, cuda:1")
    args = parser.parse_args()
    device = resolve_device(args.device)
    mnist_root()
    print(
        f"{machine(device)}; torch {torch.__version__}; {args.iterations} iterations on {device}, "
        f"{args.repeats} interleaved rounds"
    )
    overrides = [f"device.type={args.device}", *args.optbench_overrides]
    eval_every = compose().eval_every
    for name in args.optimizers:
        notebook, optbench, training, floor, step_floor = [], [], [], [], []
        for _ in range(args.repeats):
            seconds, nb_acc = time_notebook(name, args.iterations, device)
            notebook.append(seconds)
            seconds, train_seconds, ob_acc = time_optbench(name, args.iterations, overrides)
            optbench.append(seconds)
            training.append(train_seconds)
            steps, evaluations = time_floor(args.iterations, eval_every, device=device)
            floor.append(steps + evaluations)
            step_floor.append(steps)
        median = {
            side: statistics.median(times)
            for side, times in (
                ("notebook", notebook),
                ("optbench", optbench),
                ("training", training),
                ("floor", floor),
                ("step_floor", step_floor),
            )
        }
        print(
            f"{name:10s} notebook {median['notebook']:6.2f}s  optbench {median['optbench']:5.2f}s "
            f"(training {median['training']:5.2f}s)  floor {median['floor']:5.2f}s (steps {median['step_floor']:5.2f}s)  |  "
            f"notebook/optbench {median['notebook'] / median['optbench']:5.1f}x (best {min(notebook) / min(optbench):.1f}x)  "
            f"training/step floor {median['training'] / median['step_floor']:4.2f}x  notebook/floor "
            f"{median['notebook'] / median['floor']:5.1f}x  |  final acc {nb_acc:.2f} vs {ob_acc:.2f}"
        )


if __name__ == "__main__":
    main()
