"""Train a group of jobs as one wide model, each member recorded as its own run.

Per step: every member draws its own minibatch (from its own random stream, replaying its single
run's draws), the wide model computes all members' outputs in one pass, the sum of the members'
mean losses is differentiated once, and the optimizers step. At each evaluation every member's rows
are flushed and checked for divergence as in a single run; a member that diverges stops alone.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

from optbench.errors import OptbenchError
from optbench.job.job import Job, Run, load_task, run_settings, settle
from optbench.job.loop import record_evaluations
from optbench.runtime.clock import TrainingClock
from optbench.runtime.device import Device, spread
from optbench.runtime.randomness import drawing_from, snapshot_global
from optbench.sweeps.vectorized.batched import BATCHED, MemberSteps, batch_signature
from optbench.sweeps.vectorized.wide import WideMLP, mean_nll_gradient

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One job of the group (what it trains with, and its log), with the random stream its single run would
    draw from."""

    run: Run
    log: logging.Logger
    generator: torch.Generator
    batches: Iterator[torch.Tensor] | None = None
    lrs: list[float] = field(default_factory=list)  # lr of each step since the last flush
    running: bool = True


def _steppers(members: list[Member], wide: WideMLP) -> list[Any]:
    """One batched stepper per run of members with the same batch signature; MemberSteps for the rest."""
    steppers = []
    for signature, run in itertools.groupby(
        range(len(members)), key=lambda k: batch_signature(members[k].run.optimizer)
    ):
        run = list(run)
        optimizers = [members[k].run.optimizer for k in run]
        if signature is None:
            steppers.append(MemberSteps(optimizers))
        else:
            block = slice(run[0], run[-1] + 1)
            steppers.append(BATCHED[signature[0]](optimizers, [wide.flat], [wide.flat_grad], block))
    return steppers


def _flush(
    members: list[Member], losses: torch.Tensor, correct: torch.Tensor, grad_norms: torch.Tensor, sizes: list[int]
) -> None:
    """Hand each running member its pending rows; a member whose rows diverged stops."""
    for k, member in enumerate(members):
        if not member.running:
            continue
        recorder, count = member.run.recorder, len(member.lrs)  # len(sizes), unless this member was flushed already
        recorder.extend(
            losses[:count, k],
            correct[:count, k] if recorder.has_accuracy else None,
            sizes[:count],
            member.lrs,
            grad_norms[:count, k] if recorder.grad_norm else None,
        )
        member.lrs = []
        if not recorder.flush():
            member.running = False
            member.log.warning(
                "diverged at iteration %d (%s): this member stops, the others go on",
                recorder.outcome.diverged_at,
                recorder.outcome.divergence,
            )


def train_group(members: list[Member], *, batch_size: int, eval_every: int, progress: bool = True) -> None:
    """Train set-up jobs (same task, model shape and budget) together; each member's recorder gets its outcome."""
    members = sorted(members, key=lambda member: repr(batch_signature(member.run.optimizer)))
    wide = WideMLP([member.run.model for member in members])
    steppers = _steppers(members, wide)
    task, iterations, count = members[0].run.task, members[0].run.iterations, len(members)
    split = task.data.train
    # Gathering rows of the split scaled once gives the bits of scaling the gathered rows, as a single
    # run does (scaling is element-wise), and saves a K-times-larger kernel per step.
    features = split.features
    for member in members:
        member.batches = task.batches(batch_size, member.generator)  # the task's batches, from the member's stream
    gathered = torch.empty(count * batch_size * features.shape[1], device=features.device)  # refilled each step
    capacity = min(eval_every, iterations)
    losses = torch.empty(capacity, count, device=split.labels.device)
    correct = torch.empty(capacity, count, dtype=torch.int64, device=split.labels.device)
    grad_norms = torch.full((capacity, count), math.nan, device=split.labels.device)
    measured = [k for k, member in enumerate(members) if member.run.gradients.touched]  # grad_clip, record_grad_norm
    sizes: list[int] = []
    clock = TrainingClock(features.device)  # the group's: every member's seconds are the group's training time
    bar = tqdm(total=iterations, desc=f"train x{count}", unit="it", disable=None if progress else True, leave=False)
    with warnings.catch_warnings():
        # A batched member's own optimizer object never steps (its block steps for it), which torch's
        # schedulers would report once; the schedule itself works as in a single run.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        try:
            for iteration in range(1, iterations + 1):
                index = torch.stack(
                    [next(member.batches) for member in members]
                ).flatten()  # an epoch's last batch may be short
                inputs = gathered[: index.numel() * features.shape[1]].view(count, -1, features.shape[1])
                torch.index_select(features, 0, index, out=inputs.view(-1, features.shape[1]))
                labels = split.labels.index_select(0, index).view(count, -1)
                logits = wide.forward(inputs)
                log_probs = F.log_softmax(logits, dim=-1)
                # Each member's mean loss, summed: d(sum)/d(member k) is member k's own gradient.
                wide.backward(mean_nll_gradient(log_probs, labels))
                # The logged loss is computed as the single run computes it (mean reduction).
                torch.stack([F.nll_loss(log_probs[k], labels[k]) for k in range(count)], out=losses[len(sizes)])
                torch.sum(logits.argmax(-1) == labels, dim=-1, out=correct[len(sizes)])
                for k in measured:  # each member's own global norm, clipped as its single run clips
                    grad_norms[len(sizes), k] = members[k].run.gradients.apply(wide.member_parameters[k])
                lrs = [member.run.optimizer.param_groups[0]["lr"] for member in members]
                for stepper in steppers:
                    stepper.step()
                sizes.append(labels.shape[1])  # the step is recorded once every member has taken it
                for member, lr in zip(members, lrs):
                    member.lrs.append(lr)
                for member in members:
                    if member.run.scheduler is not None:
                        member.run.scheduler.step()
                if iteration == 1:
                    clock.start()
                bar.update()
                if iteration % eval_every == 0 or iteration == iterations:
                    _flush(members, losses, correct, grad_norms, sizes)
                    sizes = []
                    for member in members:
                        if member.running:
                            _evaluate(member, iteration, clock)
                    if not any(member.running for member in members):
                        break
            for member in members:
                if member.running:
                    member.run.recorder.outcome.status = "completed"
        except KeyboardInterrupt as stop:
            _flush(members, losses, correct, grad_norms, sizes)
            for member in members:
                if member.running:
                    member.run.recorder.interrupted(stop)  # as a single run stops: its finished steps kept
            log.warning("interrupted: every member keeps its rows up to the last finished step")
        finally:
            bar.close()
            for member in members:
                member.run.recorder.outcome.timed(clock)


def _evaluate(member: Member, iteration: int, clock: TrainingClock) -> None:
    """Evaluate one member on the test split, drawing its test pass from its own random stream."""
    run = member.run
    with drawing_from(member.generator):
        result = record_evaluations(run.model, run.task, run.optimizer, run.protocol, run.recorder, iteration, clock)
    member.log.info("iteration %d: train loss %.4f | %s", iteration, run.recorder.outcome.last_train_loss, result)


def run_group(
    cfgs: list[DictConfig], out_dirs: list[Path], loggers: list[logging.Logger] | None = None, slot: int | None = None
) -> list[dict[str, Any]]:
    """Run jobs that can share one wide model (see `grouping`) and write each one's files; return their summaries.

    Each member goes through the job room as a single run does (`settle`, `Job.open`, `setup`, `finish`,
    `close`); only its loop is the group's. A job whose settings are rejected or whose setup fails is recorded
    as failed and the others go on; a completed run found by `resume=true` is skipped. CPU settings and
    numerics policy are the first job's. `slot` (a launcher's worker) picks the GPU: see `runtime.device.spread`.
    """
    summaries: list[dict[str, Any]] = [{"status": "failed"} for _ in cfgs]  # a rejected job's stays so
    jobs: dict[int, Job] = {}
    for index, (cfg, out_dir, job_log) in enumerate(zip(cfgs, out_dirs, loggers or [log] * len(cfgs))):
        try:
            if (previous := settle(cfg, out_dir, job_log)) is not None:
                summaries[index] = previous
                continue
            if slot is not None:
                cfg.device.type = spread(str(cfg.device.type), slot)
            jobs[index] = Job.open(cfg, out_dir, job_log)
        except OptbenchError as exc:
            job_log.error("%s", exc)
    if not jobs:
        return summaries
    first = next(iter(jobs.values())).cfg
    members: dict[int, Member] = {}
    try:
        device = Device.of(first.device).resolve()
        with run_settings(first, device):
            task = load_task(first, device)
            for index, job in jobs.items():
                try:
                    run = job.setup(task, device)
                except Exception as exc:  # this job's own config is at fault: it fails, the group goes on
                    job.fail(exc)
                    job.log.error("%s", exc)
                    continue
                members[index] = Member(run, job.log, snapshot_global())  # the state right after its init
                job.log.info(
                    "%s on task %s (%s), %d iterations on %s, in a vectorised group",
                    type(run.optimizer).__name__,
                    task.name,
                    task.data_name,
                    run.iterations,
                    device,
                )
            if members:
                runs = [member.run for member in members.values()]
                log.info(
                    "training %d jobs as one wide model (%s, %d iterations on %s)",
                    len(runs),
                    task.name,
                    runs[0].iterations,
                    device,
                )
                train_group(
                    list(members.values()),
                    batch_size=first.batch_size,
                    eval_every=runs[0].eval_every,
                    progress=first.progress,
                )
                for index, member in members.items():
                    jobs[index].finish(member.run)
                    # train_seconds is the group's, shared
                    jobs[index].summary.update(vectorized_members=len(members))
    except Exception as exc:
        for job in jobs.values():
            job.fail(exc)
        raise
    finally:
        for index, job in jobs.items():
            summaries[index] = job.close()
    return summaries
