"""The training loop: step, record, and at every `eval_every` steps flush and evaluate.

The task supplies batches, the loss and the evaluation; the recorder buffers and writes the
metrics and decides divergence. So the loop is the same for every problem.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from optbench.diagnostics.probe import Probe
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
    """Evaluate on each split the task evaluates (the test split last), write the rows; the test result."""
    seconds = clock.seconds
    with clock.paused():
        for split in task.evaluated_splits:
            result = evaluate(model, task, optimizer, protocol, split)
            recorder.evaluation(iteration, result, seconds, split)
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


@dataclass(frozen=True)
class Gradients:
    """What happens to the gradient between backward and the optimizer's step: clipping its global L2 norm to
    `clip` (None: never), and measuring that norm (always, when clipping)."""

    clip: float | None = None
    measure: bool = False

    @property
    def touched(self) -> bool:
        """True when the gradient's norm is computed at all (otherwise a step does no extra work)."""
        return self.clip is not None or self.measure

    def apply(self, parameters: list[torch.Tensor]) -> torch.Tensor:
        """The global norm of the parameters' gradients, before clipping them in place (nanoGPT's
        `clip_grad_norm_` call, so a clipped run steps on nanoGPT's gradient bits)."""
        if self.clip is None:
            return torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
        return torch.nn.utils.clip_grad_norm_(parameters, self.clip)


def take_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    batch: Any,
    protocol: Protocol,
    gradients: Gradients = Gradients(),
) -> StepLoss:
    """One optimizer step on `batch`, driven as the protocol says, its gradient clipped or measured as `gradients`
    says (each time a closure computes one); returns the loss before the step (with the first gradient's norm)."""
    losses: list[StepLoss] = []
    parameters = list(model.parameters()) if gradients.touched else []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        step = task.loss(model, batch)
        with warnings.catch_warnings():
            # torch warns that create_graph ties each parameter to its gradient in a reference
            # cycle; zero_grad(set_to_none=True) above breaks it before every backward.
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            step.loss.backward(create_graph=protocol.create_graph)
        if gradients.touched:
            step.grad_norm = gradients.apply(parameters).detach()
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
    gradients: Gradients = Gradients(),
    probe: Probe | None = None,
    progress: bool = True,
) -> Outcome:
    """Train for `iterations` steps, evaluating every `eval_every` steps and at the end.

    The scheduler, if any, sets the lr of the next step after each optimizer step; the probe, if any, measures
    the steps `diagnostics.every` asks for (out of the training seconds). A train/eval
    optimizer ends in eval mode, so the model holds the weights it was evaluated with.
    """
    protocol = protocol or Protocol()
    batches = task.batches(batch_size)
    device = next(model.parameters()).device
    if task.evaluates_at_start:  # before the clock exists: iteration 0 is at 0 training seconds
        record_evaluations(model, task, optimizer, protocol, recorder, 0, TrainingClock(device))
    clock = TrainingClock(device)
    bar = tqdm(total=iterations, desc="train", unit="it", disable=None if progress else True, leave=False)
    if protocol.train_eval:
        optimizer.train()
    try:
        for iteration in range(1, iterations + 1):
            if probe is not None:
                probe.before(iteration)
            step = take_step(model, optimizer, task, next(batches), protocol, gradients)
            lr = optimizer.param_groups[0]["lr"]
            recorder.step(step, lr, task.position(model))
            if probe is not None and probe.due(iteration):
                with clock.paused():  # measuring is not training
                    probe.after(iteration, model, optimizer, lr)
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
    except KeyboardInterrupt as stop:
        recorder.interrupted(stop)
        log.warning("interrupted after %d iterations", recorder.outcome.iterations_run)
    finally:
        bar.close()
        if protocol.train_eval:
            optimizer.eval()
        recorder.outcome.timed(clock)
    return recorder.outcome
