"""What the language model's two evaluations give for the same weights: nanoGPT's estimate against fixed windows,
on nanoGPT's 10% validation split and on shakespeare_char's 5% parts. A measurement for docs/language-model.md.

    python benchmarks/lm_evaluation.py              # trains nanoGPT's CPU recipe (2000 steps, ~2 min), then measures
    python benchmarks/lm_evaluation.py --draws 200  # more repeated estimates for their spread

The weights are those of `task=shakespeare_char_nanogpt_cpu` after its 2000 steps (nanoGPT's own final weights:
the run is nanoGPT's bit for bit). Then, with the model in eval mode:
- nanoGPT's estimate (eval_iters=20 batches of 12 windows) of its validation split, `--draws` times from successive
  generator states: the first is the number the run reports, the spread is how much one estimate can move;
- fixed windows over nanoGPT's whole validation split (the last 10% of the text), over its two halves (which are
  shakespeare_char's validation and test parts, the 5% + 5% split) and with the estimate's 20-batch size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optbench.config.compose import compose  # noqa: E402
from optbench.job.job import Job, load_task, run_settings  # noqa: E402
from optbench.runtime.device import cpu_name  # noqa: E402


def windows_loss(task, model: torch.nn.Module, tokens: torch.Tensor) -> float:
    """Mean per-character loss over `tokens` cut into fixed windows side by side (the default evaluation)."""
    span = torch.arange(task.block_size + 1)
    starts = torch.arange(0, len(tokens) - task.block_size, task.block_size)
    windows = tokens[starts.unsqueeze(1) + span]
    total = sum(task.predict(model, chunk, reduction="sum")[0].item() for chunk in windows.split(256))
    return total / (len(windows) * task.block_size)


def main() -> None:
    """Train the recipe, then print each evaluation of its final weights."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=100)
    args = parser.parse_args()
    cfg = compose("task=shakespeare_char_nanogpt_cpu", "device=cpu", "progress=false")
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp, run_settings(cfg, device):  # the run's own CPU settings
        job = Job.open(cfg, Path(tmp))
        run = job.setup(load_task(cfg, device), device)
        job.train(run)
        reported = run.recorder.outcome.evaluations[-1][1].loss
        job.finish(run)
        job.close()
    task, model = run.task, run.model.eval()
    with torch.no_grad():
        estimates = [task.estimate(model, "test").loss for _ in range(args.draws)]
        val = task.corpus.test  # nanoGPT's val.bin: the last 10%
        halves = (val[: len(val) // 2], val[len(val) // 2 :])  # shakespeare_char's 5% validation and test parts
        print(f"{cpu_name()}, torch {torch.__version__}: nanoGPT's CPU recipe, final weights")
        print(f"  the run's reported estimate: {reported:.4f}")
        print(
            f"  {args.draws} estimates (20 x 12 windows each): mean {statistics.fmean(estimates):.4f}, "
            f"sd {statistics.stdev(estimates):.4f}, range [{min(estimates):.4f}, {max(estimates):.4f}]"
        )
        print(f"  fixed windows over nanoGPT's val split (10%): {windows_loss(task, model, val):.4f}")
        print(
            f"  fixed windows over its first half (shakespeare_char's validation part): "
            f"{windows_loss(task, model, halves[0]):.4f}"
        )
        print(
            f"  fixed windows over its second half (shakespeare_char's test part): "
            f"{windows_loss(task, model, halves[1]):.4f}"
        )


if __name__ == "__main__":
    main()
