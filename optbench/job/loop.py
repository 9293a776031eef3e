"""The training loop: step, record, and at every `eval_every` steps flush and evaluate.

The task supplies batches, the loss and the evaluation; the recorder buffers and writes the
metrics and decides divergence. So the loop is the same for every problem.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from optbench.optim.build import Protocol
from optbench.rundir.recorder import Outcome, Recorder
from optbench.runtime.clock import TrainingClock
from optbench.tasks import Evaluation, StepLoss, Task

log = logging.getLogger(__name__)


def record_evaluations(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    protocol: Protocol,
    recorder: Recorder,
    iteration: int,
    clock: TrainingClock,
) -> Evaluation:
    """Evaluate on the test split (and the validation split when on), write the rows; the test result."""
    seconds = clock.seconds
    with clock.paused():
        if task.validation:
            recorder.evaluation(iteration, evaluate(model, task, optimizer, protocol, "valid"), seconds, "valid")
        result = evaluate(model, task, optimizer, protocol)
        recorder.evaluation(iteration, result, seconds)
    return result


@torch.no_grad()
def evaluate(
    model: nn.Module, task: Task, optimizer: torch.optim.Optimizer, protocol: Protocol, split: str = "test"
) -> Evaluation:
    """The task's metrics on `split`, with the model (and a schedule-free optimizer) in eval mode."""
    model.eval()
    if protocol.train_eval:
        optimizer.eval()  # schedule-free: evaluate at the averaged point x, not at the gradient point y
    try:
        return task.evaluate(model, split)
    finally:
        model.train()
        if protocol.train_eval:
            optimizer.train()


def take_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, batch: Any, protocol: Protocol
) -> StepLoss:
    """One optimizer step on `batch`, driven as the protocol says; returns the loss before the step."""
    losses: list[StepLoss] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        step = task.loss(model, batch)
        with warnings.catch_warnings():
            # torch warns that create_graph ties each parameter to its gradient in a reference
            # cycle; zero_grad(set_to_none=True) above breaks it before every backward.
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            step.loss.backward(create_graph=protocol.create_graph)
        losses.append(step)
        return step.loss

    if protocol.closure:
        optimizer.step(closure)  # LBFGS may evaluate it several times; the first is the step's loss
    else:
        closure()
        optimizer.step()
    return losses[0]


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    recorder: Recorder,
    *,
    iterations: int,
    batch_size: int,
    eval_every: int,
    scheduler: LRScheduler | None = None,
    protocol: Protocol | None = None,
    progress: bool = True,
) -> Outcome:
    """Train for `iterations` steps, evaluating every `eval_every` steps and at the end.

    The scheduler, if any, sets the lr of the next step after each optimizer step. A train/eval
    optimizer ends in eval mode, so the model holds the weights it was evaluated with.
    """
    protocol = protocol or Protocol()
    batches = task.batches(batch_size)
    clock = TrainingClock(next(model.parameters()).device)
    bar = tqdm(total=iterations, desc="train", unit="it", disable=None if progress else True, leave=False)
    if protocol.train_eval:
        optimizer.train()
    try:
        for iteration in range(1, iterations + 1):
            step = take_step(model, optimizer, task, next(batches), protocol)
            recorder.step(step, optimizer.param_groups[0]["lr"], task.position(model))
            if scheduler is not None:
                scheduler.step()
            if iteration == 1:
                clock.start()
            bar.update()

            if iteration % eval_every == 0 or iteration == iterations:
                if not recorder.flush():
                    log.warning(
                        "diverged at iteration %d (%s): stopping",
                        recorder.outcome.diverged_at,
                        recorder.outcome.divergence,
                    )
                    return recorder.outcome
                result = record_evaluations(model, task, optimizer, protocol, recorder, iteration, clock)
                report = f"train loss {recorder.outcome.last_train_loss:.4f} | {result}"
                bar.set_postfix_str(report)
                log.info("iteration %d: %s", iteration, report)
        recorder.outcome.status = "completed"
    except KeyboardInterrupt:
        recorder.interrupted()
        log.warning("interrupted after %d iterations", recorder.outcome.iterations_run)
    finally:
        bar.close()
        if protocol.train_eval:
            optimizer.eval()
        recorder.outcome.timed(clock)
    return recorder.outcome
