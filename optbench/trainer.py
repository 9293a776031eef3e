"""The training loop: step, record, and at every `eval_every` steps flush and evaluate.

The task supplies batches, the loss and the evaluation; the recorder buffers and writes the
metrics and decides divergence. So the loop is the same for every problem.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm import tqdm

from torch.optim.lr_scheduler import LRScheduler
from optbench.recorder import Outcome, Recorder
from optbench.tasks import Evaluation, Task

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(model: nn.Module, task: Task) -> Evaluation:
    """The task's test metrics, with the model in eval mode."""
    model.eval()
    try:
        return task.evaluate(model)
    finally:
        model.train()


def train(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, recorder: Recorder, *,
          iterations: int, batch_size: int, eval_every: int, scheduler: LRScheduler | None = None,
          progress: bool = True) -> Outcome:
    """Train for `iterations` steps, evaluating every `eval_every` steps and at the end.

    The scheduler, if any, sets the lr of the next step after each optimizer step.
    """
    batches = task.batches(batch_size)
    bar = tqdm(total=iterations, desc="train", unit="it", disable=None if progress else True, leave=False)
    try:
        for iteration in range(1, iterations + 1):
            step = task.loss(model, next(batches))
            optimizer.zero_grad(set_to_none=True)
            step.loss.backward()
            optimizer.step()
            recorder.step(step, optimizer.param_groups[0]["lr"], task.position(model))
            if scheduler is not None:
                scheduler.step()
            bar.update()

            if iteration % eval_every == 0 or iteration == iterations:
                if not recorder.flush():
                    log.warning("diverged at iteration %d (%s): stopping", recorder.outcome.diverged_at,
                                recorder.outcome.divergence)
                    return recorder.outcome
                result = evaluate(model, task)
                recorder.evaluation(iteration, result)
                report = f"train loss {recorder.outcome.last_train_loss:.4f} | {result}"
                bar.set_postfix_str(report)
                log.info("iteration %d: %s", iteration, report)
        recorder.outcome.status = "completed"
    except KeyboardInterrupt:
        recorder.interrupted()
        log.warning("interrupted after %d iterations", recorder.outcome.iterations_run)
    finally:
        bar.close()
    return recorder.outcome
