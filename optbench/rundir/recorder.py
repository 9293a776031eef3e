"""What one run records while it trains: per-iteration metrics buffered on the device, written at
each evaluation, and checked for divergence there.

Keeping the buffers on the device avoids a host sync per step; at each evaluation they are copied
to the host once. The recorder holds no training state, so one process could hold many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from optbench.rundir.writer import RunRecords
from optbench.runtime.clock import TrainingClock
from optbench.tasks import Evaluation, StepLoss


@dataclass
class Outcome:
    """How a training run ended and the numbers its summary needs."""

    status: str = "running"  # completed | diverged | interrupted
    iterations_run: int = 0  # iterations fully recorded
    diverged_at: int | None = None
    divergence: str | None = None  # why the run was stopped as diverged
    interrupted_by: str | None = None  # the signal that stopped an interrupted run (SIGINT, SIGTERM)
    evaluations: list[tuple[int, Evaluation]] = field(default_factory=list)  # the test split's
    validations: list[tuple[int, Evaluation]] = field(default_factory=list)  # the validation split's, when on
    last_train_loss: float | None = None
    train_seconds: float = 0.0  # training time after the warm-up step, evaluations excluded
    warmup_seconds: float | None = None  # the first step's time (None if it never finished)

    def timed(self, clock: TrainingClock) -> None:
        """Take the training and warm-up seconds from a `TrainingClock` at the end of training."""
        self.train_seconds, self.warmup_seconds = clock.seconds, clock.warmup_seconds


class Recorder:
    """Buffers a run's per-step loss, accuracy (and point, for 2-D tasks) and writes them out.

    The run counts as diverged at the first non-finite loss, or at the first loss above
    `divergence_factor` times the first (positive) loss; None checks non-finite losses only.
    """

    def __init__(
        self,
        records: RunRecords,
        *,
        capacity: int,
        has_accuracy: bool,
        divergence_factor: float | None,
        trajectory_columns: tuple[str, ...] = (),
        start: torch.Tensor | None = None,
        grad_norm: bool = False,
    ) -> None:
        self.records = records
        self.grad_norm = grad_norm  # train.csv has the grad_norm column: every step brings its norm
        self.outcome = Outcome()
        self.capacity = capacity
        self.has_accuracy = has_accuracy
        self.divergence_factor = divergence_factor
        self._losses: torch.Tensor | None = None  # allocated at the first step, in the loss's dtype and device
        self._correct: torch.Tensor | None = None
        self._grad_norms: torch.Tensor | None = None
        self._sizes: list[int] = []
        self._lrs: list[float] = []
        self._positions: list[torch.Tensor] = []
        self._flushed = 0  # iterations already written to train.csv
        self._limit = math.inf  # loss above which the run counts as diverged, set from the first loss
        if trajectory_columns:  # a 2-D task: trajectory.csv, starting with the point before training
            records.open_trajectory(trajectory_columns).append(0, *([v] for v in start.tolist()))

    def _allocate(self, loss: torch.Tensor) -> None:
        """The per-step buffers, one flush long, in the loss's dtype and on its device."""
        self._losses = torch.empty(self.capacity, dtype=loss.dtype, device=loss.device)
        self._correct = torch.empty(self.capacity, dtype=torch.int64, device=loss.device)
        if self.grad_norm:
            self._grad_norms = torch.empty(self.capacity, dtype=loss.dtype, device=loss.device)

    def step(self, step: StepLoss, lr: float, position: torch.Tensor | None = None) -> None:
        """Record one finished optimizer step, taken with learning rate `lr` (no host sync)."""
        correct = step.correct.view(1) if step.correct is not None else None
        grad_norm = step.grad_norm.view(1) if step.grad_norm is not None else None
        self.extend(step.loss.detach().view(1), correct, [step.size], [lr], grad_norm)
        if position is not None:
            self._positions.append(position)

    def extend(
        self,
        losses: torch.Tensor,
        correct: torch.Tensor | None,
        sizes: list[int],
        lrs: list[float],
        grad_norms: torch.Tensor | None = None,
    ) -> None:
        """Record `len(losses)` finished steps at once: one step of a run (`step`), or a vectorised member's
        steps since its last flush (the wide loop computes every member's losses at once)."""
        count = len(losses)
        if self._losses is None:
            self._allocate(losses)
        slot = self.outcome.iterations_run - self._flushed
        self._losses[slot : slot + count] = losses
        if correct is not None:
            self._correct[slot : slot + count] = correct
        if self._grad_norms is not None:
            self._grad_norms[slot : slot + count] = grad_norms
        self._sizes.extend(sizes)
        self._lrs.extend(lrs)
        self.outcome.iterations_run += count

    def flush(self) -> bool:
        """Write the pending rows up to the first diverged one (if any). False if the run diverged."""
        pending = self.outcome.iterations_run - self._flushed
        losses = self._losses[:pending].tolist() if pending else []  # no buffers before the first step
        accuracies = (
            [c / s for c, s in zip(self._correct[:pending].tolist(), self._sizes)]
            if self.has_accuracy and pending
            else [""] * pending
        )  # accuracy is not defined: the column stays empty
        if self._flushed == 0 and losses and self.divergence_factor and math.isfinite(losses[0]) and losses[0] > 0:
            self._limit = self.divergence_factor * losses[0]
        good = next((i for i, v in enumerate(losses) if not math.isfinite(v) or v > self._limit), pending)
        columns = [losses[:good], accuracies[:good], self._lrs[:good]]
        if self._grad_norms is not None:
            columns.append(self._grad_norms[:good].tolist())
        self.records.train.append(self._flushed + 1, *columns)
        if self._positions and good:
            self.records.trajectory.append(self._flushed + 1, *zip(*torch.stack(self._positions[:good]).tolist()))
        if good:
            self.outcome.last_train_loss = losses[good - 1]
        self._flushed += good
        self._sizes.clear()
        self._lrs.clear()
        self._positions.clear()
        if good == pending:
            return True
        self.outcome.iterations_run = self._flushed
        self.outcome.diverged_at = self._flushed + 1
        self.outcome.status = "diverged"
        bad = losses[good]
        self.outcome.divergence = (
            f"loss {bad} is not finite"
            if not math.isfinite(bad)
            else f"loss {bad:.4g} exceeded {self.divergence_factor:g} x the first loss ({self._limit / self.divergence_factor:.4g})"
        )
        return False

    def evaluation(self, iteration: int, result: Evaluation, seconds: float, split: str = "test") -> None:
        """Append one evaluation to test.csv (valid.csv, train_eval.csv: `split`), with the training seconds it came after."""
        self.records.evaluation(split).append(
            iteration, [result.loss], [result.accuracy if self.has_accuracy else ""], [round(seconds, 4)]
        )
        if split in ("test", "valid"):  # what the summary reports
            (self.outcome.evaluations if split == "test" else self.outcome.validations).append((iteration, result))

    def interrupted(self, stop: KeyboardInterrupt) -> None:
        """Keep every fully recorded step of a run stopped by Ctrl-C/SIGTERM (`stop`: what raised, its signal)."""
        self.outcome.interrupted_by = str(stop) or "SIGINT"  # Ctrl-C's KeyboardInterrupt carries no name
        pending = self.outcome.iterations_run - self._flushed
        del self._sizes[pending:], self._lrs[pending:], self._positions[pending:]  # a step cut off half-way
        self.flush()
        self.outcome.status = "interrupted"
