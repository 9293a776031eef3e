"""What diagnostics cost a run: its training loop with `diagnostics.every` off, every 100 and every 10 steps,
interleaved round by round in one process, on the default task and on shakespeare_char.

    python benchmarks/diagnostics.py                          # 300 steps, 3 rounds, both tasks
    python benchmarks/diagnostics.py --tasks mnist_mlp --steps 1000

Each side builds the same job (`Job.open`, `setup`) and times `Job.train` alone with `time.perf_counter` (the
whole loop: steps, evaluations and measurements; summary.json's train_seconds leaves measurements out, so it is
not used here). Reported per task: the median seconds per step of each side, the ratio to diagnostics off, and the
floor of a measurement: its Hessian-vector products (from diagnostics.csv) times the median time of one product
on the same weights and fixed batch, measured alone. Every line names the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optbench.config.compose import compose  # noqa: E402
from optbench.diagnostics.hessian import hessian_products  # noqa: E402
from optbench.job.job import Job, load_task, run_settings  # noqa: E402
from optbench.runtime.device import cpu_name  # noqa: E402

SIDES = {"off": None, "every 100": 100, "every 10": 10}


def train_seconds(task: str, every: int | None, steps: int, out: Path, extra: list[str]) -> tuple[float, int]:
    """Seconds of one job's training loop, and the Hessian-vector products its measurements took."""
    overrides = [f"task={task}", f"iterations={steps}", f"eval_every={steps}", "device=cpu", "progress=false", *extra]
    if every is not None:
        overrides.append(f"diagnostics.every={every}")
    cfg = compose(*overrides)
    job = Job.open(cfg, out)
    device = torch.device("cpu")
    with run_settings(cfg, device):
        run = job.setup(load_task(cfg, device), device)
        start = time.perf_counter()
        job.train(run)
        seconds = time.perf_counter() - start
        job.finish(run)
    job.close()
    diagnostics = out / "diagnostics.csv"
    products = int(pd.read_csv(diagnostics).hessian_products.sum()) if diagnostics.exists() else 0
    return seconds, products


def product_seconds(task: str, extra: list[str], repeats: int = 20) -> float:
    """The median time of one Hessian-vector product on the task's fixed batch at its initial weights."""
    cfg = compose(f"task={task}", "device=cpu", "progress=false", "diagnostics.every=1", *extra)
    device = torch.device("cpu")
    with run_settings(cfg, device), sdpa_kernel(SDPBackend.MATH):  # as the probe measures (double backward)
        task_object = load_task(cfg, device)
        torch.manual_seed(0)
        model = task_object.build_model()
        model.eval()
        parameters = [p for p in model.parameters() if p.requires_grad]
        loss = task_object.sharpness_loss(cfg.diagnostics.batch_size)(model)
        product = hessian_products(loss, parameters)
        vector = torch.randn(sum(p.numel() for p in parameters))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            product(vector)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """One table row per task and side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["mnist_mlp", "shakespeare_char"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="more overrides for every job, e.g. diagnostics.batch_size=32")
    args = parser.parse_args()
    print(
        f"CPU: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, "
        f"overrides: {' '.join(args.overrides) or 'none'}"
    )
    print("| task | diagnostics | ms per step | x off | products | floor: products x one product |")
    print("| --- | --- | --- | --- | --- | --- |")
    for task in args.tasks:
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        products: dict[str, int] = {}
        for _ in range(args.rounds):
            for side, every in SIDES.items():
                with tempfile.TemporaryDirectory() as out:
                    seconds, products[side] = train_seconds(task, every, args.steps, Path(out), args.overrides)
                times[side].append(seconds)
        one = product_seconds(task, args.overrides)
        off = statistics.median(times["off"])
        for side in SIDES:
            median = statistics.median(times[side])
            floor = products[side] * one
            print(
                f"| {task} | {side} | {1000 * median / args.steps:.2f} | {median / off:.2f} | {products[side]} | "
                f"{1000 * floor / args.steps:.2f} ms per step ({1000 * one:.2f} ms a product) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
