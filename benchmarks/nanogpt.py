"""optbench's language-model workload against nanoGPT's own train.py, and the cost of gradient clipping, in one
process.

    python benchmarks/nanogpt.py                        # 300 steps of nanoGPT's CPU recipe, 3 interleaved rounds
    python benchmarks/nanogpt.py --steps 2000 --repeats 1   # the whole recipe: the wall time of each

nanoGPT: its train.py (tests/nanogpt, karpathy/nanoGPT 3adf61e) run in this process with `runpy`, its CPU recipe
with `--max_iters=N` (its N + 1 steps, estimate_loss every 250); its step time is the mean of the times it logs
itself (`iter i: ... time X ms`) over the iterations whose time holds no evaluation and no warm-up (not iteration 0
nor a multiple of 250). optbench: `task=shakespeare_char_nanogpt_cpu iterations=N`, the same steps on the same
numbers (the losses are equal bit for bit), evaluating at the same iterations; its step time is summary.json's
train_seconds over the N - 1 steps after the warm-up step (evaluations left out). The ratio optbench / nanoGPT is
the cost of optbench's loop over nanoGPT's: the arithmetic is the same. The wall times are each whole run.

Clipping: one training step of the recipe (forward, backward, AdamW) with grad_clip=null and with 1.0, interleaved
step by step on the same batch; the difference is what clipping costs, set beside its floor, the norm and the scale
alone (`clip_grad_norm_` on gradients already there). Every line names the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "nanogpt"))

import runner  # noqa: E402  (tests/nanogpt/runner.py: nanoGPT's files, prepared)

from optbench.config.compose import compose  # noqa: E402
from optbench.job.job import Job, load_task, run_job  # noqa: E402
from optbench.job.loop import Gradients, take_step  # noqa: E402
from optbench.runtime.device import cpu_name  # noqa: E402

RECIPE = ("task=shakespeare_char_nanogpt_cpu", "device=cpu", "progress=false", "schedule.lr_decay_iters=2000")
EVAL_INTERVAL = 250  # config/train_shakespeare_char.py's eval_interval, the preset's eval_every
ITER_TIME = re.compile(r"^iter (\d+): loss \S+, time ([\d.]+)ms")


def nanogpt_step_seconds(workdir: Path, steps: int) -> tuple[float, float]:
    """Run nanoGPT's train.py in this process for `steps` steps: its mean logged step time, and the wall time."""
    argv, cwd = sys.argv, Path.cwd()
    sys.argv = ["train.py", *runner.CPU_RECIPE, f"--max_iters={steps}", f"--out_dir={workdir / 'out'}"]
    log = io.StringIO()
    start = time.perf_counter()
    try:
        os.chdir(workdir)
        with contextlib.redirect_stdout(log):
            runpy.run_path("train.py", run_name="__main__")
    finally:
        os.chdir(cwd)
        sys.argv = argv
    wall = time.perf_counter() - start
    timed = (m for line in log.getvalue().splitlines() if (m := ITER_TIME.match(line)))
    times = [float(m[2]) / 1000 for m in timed if int(m[1]) % EVAL_INTERVAL]  # iteration 0 and evaluations out
    return statistics.fmean(times), wall


def optbench_step_seconds(out_dir: Path, steps: int) -> tuple[float, float]:
    """optbench's run of the recipe for `steps` steps: train_seconds per timed step, and the wall time."""
    start = time.perf_counter()
    summary = run_job(compose(*RECIPE, f"iterations={steps}"), out_dir)
    return summary["train_seconds"] / (steps - 1), time.perf_counter() - start


def clipping_cost(steps: int) -> tuple[float, float, float]:
    """Median seconds of a training step without and with clipping at 1.0, and of the clipping alone."""
    cfg = compose(*RECIPE, "iterations=10")
    with tempfile.TemporaryDirectory() as tmp:
        job = Job.open(cfg, Path(tmp))
        run = job.setup(load_task(cfg, torch.device("cpu")), torch.device("cpu"))
        batch = next(run.task.batches(cfg.batch_size))
        sides = {"off": Gradients(), "on": Gradients(clip=1.0)}
        times: dict[str, list[float]] = {name: [] for name in (*sides, "floor")}
        parameters = list(run.model.parameters())
        for _ in range(steps):
            for name, gradients in sides.items():
                start = time.perf_counter()
                take_step(run.model, run.optimizer, run.task, batch, run.protocol, gradients)
                times[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            times["floor"].append(time.perf_counter() - start)
        job.close()
    return tuple(statistics.median(times[name]) for name in ("off", "on", "floor"))


def main() -> None:
    """Interleave nanoGPT's and optbench's runs round by round; then the clipping steps; print the table rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clip-steps", type=int, default=100)
    args = parser.parse_args()
    where = f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    nano, mine = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = runner.prepare(Path(tmp) / "nanogpt", runner.bundled_text())
        for round_ in range(args.repeats):
            nano.append(nanogpt_step_seconds(workdir, args.steps))
            mine.append(optbench_step_seconds(Path(tmp) / f"optbench{round_}", args.steps))
            print(
                f"round {round_}: nanoGPT {nano[-1][0] * 1e3:.2f} ms/step ({nano[-1][1]:.1f} s), "
                f"optbench {mine[-1][0] * 1e3:.2f} ms/step ({mine[-1][1]:.1f} s)",
                flush=True,
            )
    n_step, m_step = statistics.median(s for s, _ in nano), statistics.median(s for s, _ in mine)
    n_wall, m_wall = statistics.median(w for _, w in nano), statistics.median(w for _, w in mine)
    print(
        f"| {where} | {args.steps} | {n_step * 1e3:.2f} ms ({n_wall:.1f} s) | {m_step * 1e3:.2f} ms ({m_wall:.1f} s) "
        f"| **{m_step / n_step:.3f}×** |"
    )
    off, on, floor = clipping_cost(args.clip_steps)
    print(
        f"| {where} | step without clipping {off * 1e3:.2f} ms | with grad_clip=1.0 {on * 1e3:.2f} ms "
        f"| **{on / off:.3f}×** | clipping alone (floor) {floor * 1e3:.3f} ms |"
    )


if __name__ == "__main__":
    main()
