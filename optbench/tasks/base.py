"""The task interface: a benchmark problem owns its data, model, loss, metrics and target.

After DeepOBS's `TestProblem` and FOB's `tasks/<name>/`: the training loop only asks a task for
batches, a minibatch loss, an evaluation and (for 2-D problems) the current point, so it never
branches on what kind of problem it trains.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optbench.data.sampling import Batching
from optbench.errors import OptbenchError

# Metrics a target can name: each is a column of test.csv, measured at every evaluation.
TARGET_METRICS = {"test_accuracy": "accuracy", "test_loss": "loss"}
MODES = ("max", "min")
SUPERVISED_LOSSES = ("cross_entropy", "squared")  # a classification task's `task.loss`


@dataclass(frozen=True)
class Target:
    """A goal such as test accuracy >= 0.97: the metric, its threshold and which way is better."""

    metric: str
    threshold: float
    mode: str
    strict: bool = False  # the threshold itself misses: AlgoPerf's targets are `accuracy > 0.97`

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> Target:
        """The target of a `{metric, threshold, mode[, strict]}` mapping (checked by
        `optbench.config.validation.check_target`)."""
        return cls(node["metric"], float(node["threshold"]), node["mode"], bool(node.get("strict", False)))

    @property
    def column(self) -> str:
        """The test.csv column the metric is read from."""
        return TARGET_METRICS[self.metric]

    def met(self, value: float) -> bool:
        """True when `value` of the metric reaches the threshold (NaN never does)."""
        if value is None or math.isnan(value):
            return False
        if self.strict:
            return value > self.threshold if self.mode == "max" else value < self.threshold
        return value >= self.threshold if self.mode == "max" else value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        """The target as summary.json writes it (`strict` only where set, so older readers see what they know)."""
        return {"metric": self.metric, "threshold": self.threshold, "mode": self.mode} | (
            {"strict": True} if self.strict else {}
        )

    def __str__(self) -> str:
        sign = {"max": ">=", "min": "<="}[self.mode]
        return f"{self.metric} {sign.rstrip('=') if self.strict else sign} {self.threshold:g}"


@dataclass
class StepLoss:
    """One minibatch's loss (with its graph) and what the training CSV needs about it."""

    loss: torch.Tensor
    size: int  # examples in the minibatch
    correct: torch.Tensor | None = None  # 0-d count of correctly classified examples, or None
    grad_norm: torch.Tensor | None = None  # 0-d global gradient norm before clipping, where measured


@dataclass(frozen=True)
class Evaluation:
    """Test metrics at one evaluation: mean loss and accuracy (NaN where accuracy is undefined)."""

    loss: float
    accuracy: float = math.nan

    @classmethod
    def of_sums(cls, loss_sum: torch.Tensor, correct: torch.Tensor | None, count: int) -> Evaluation:
        """Mean loss (and accuracy) of `count` examples from their summed loss and correct count,
        read back to the host in one transfer (one sync per evaluation on a GPU, not two)."""
        sums = torch.stack([loss_sum.double(), correct.double()]) if correct is not None else loss_sum.double().view(1)
        return cls(*(value / count for value in sums.tolist()))

    def metric(self, name: str) -> float:
        """The value of a target metric (`test_loss` or `test_accuracy`)."""
        return getattr(self, TARGET_METRICS[name])

    def __str__(self) -> str:
        accuracy = "" if math.isnan(self.accuracy) else f" | test accuracy {100 * self.accuracy:.2f}%"
        return f"test loss {self.loss:.4g}{accuracy}"


class Task(ABC):
    """A benchmark problem. Subclasses own data, model, loss and evaluation.

    Call order: `setup(device)`, then (after seeding) `build_model()`, then `batches()` and `loss()`
    each step and `evaluate()` at each evaluation. With `validation` on, the task also holds a
    validation split, kept apart from the training examples, that `evaluate(model, "valid")` measures.
    """

    kind: str = "classification"  # classification | regression | function (summary.json's `kind`)
    full_batch: bool = False  # every step uses the whole training split
    evaluates_at_start: bool = False  # evaluate before the first step too (iteration 0)
    trajectory_columns: tuple[str, ...] = ()  # a 2-D task writes trajectory.csv with these columns

    def __init__(
        self,
        name: str,
        target: Mapping[str, Any],
        description: str = "",
        batching: Any = None,
        validation: bool = False,
        batch_size: int | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.target = Target.from_config(target)
        self.batching = Batching.from_config(batching)
        self.validation = validation
        self.eval_batch = (
            batch_size  # the training batch size: where the batching drops a partial batch, so do evaluations
        )

    def solo_reason(self) -> str | None:
        """Why the vectorised engine cannot train this task as one member of a wide model, or None when it can."""
        return f"task={self.name} is not a minibatch classification task on MNIST or Fashion-MNIST"

    @property
    def evaluated_splits(self) -> tuple[str, ...]:
        """The splits each evaluation measures, in order: the validation split (when on), then the test split."""
        return ("valid", "test") if self.validation else ("test",)

    @property
    def has_accuracy(self) -> bool:
        """True when the task's outputs are class scores, so accuracy is defined."""
        return self.kind == "classification"

    @property
    @abstractmethod
    def data_name(self) -> str:
        """What the task trains on (summary.json's `dataset`), e.g. `mnist` or `rosenbrock`."""

    @property
    def train_size(self) -> int | None:
        """Examples in the training split, or None when the task has no dataset (batch_size and epochs do not apply)."""
        return None

    def batch_size(self, requested: int) -> int | None:
        """Examples per step: `requested`, the whole split when full-batch, None without a dataset."""
        if self.train_size is None:
            return None
        return self.train_size if self.full_batch else requested

    def eval_rows(self, n: int) -> int:
        """How many of an evaluation split's `n` examples (from the first) an evaluation uses: all of
        them, or the whole batches of the training batch size where the batching drops the rest."""
        return self.batching.eval_size(n, self.eval_batch) if self.eval_batch and not self.full_batch else n

    def steps_per_epoch(self, batch_size: int) -> int | None:
        """Minibatches in one epoch (a pass over the training split, as the task's batching cuts it)."""
        if self.train_size is None:
            return None
        return 1 if self.full_batch else self.batching.steps_per_epoch(self.train_size, batch_size)

    @abstractmethod
    def setup(self, device: torch.device) -> None:
        """Load or generate the task's data onto `device` (called once, before the seed is set)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model to train, built on the CPU right after `torch.manual_seed(seed)`."""

    @abstractmethod
    def batches(self, batch_size: int) -> Iterator[Any]:
        """An endless stream of minibatches (whatever `loss` takes)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> StepLoss:
        """The minibatch loss to minimise (forward pass only)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, split: str = "test") -> Evaluation:
        """Metrics of `model` on the test split, or on the validation split (called under torch.no_grad)."""

    def sharpness_loss(self, size: int | None) -> Callable[[nn.Module], torch.Tensor]:
        """The loss on a fixed batch of the training split (its first `size` examples, None: all), whose Hessian's
        top eigenvalue is the sharpness `diagnostics` measure. It draws nothing from torch's global generator."""
        raise OptbenchError(
            f"task={self.name} has no fixed batch to measure the sharpness on: use diagnostics.sharpness=false "
            "(the gradient and update norms are still measured)."
        )

    def position(self, model: nn.Module) -> torch.Tensor | None:
        """The current point, one value per trajectory column; None for tasks without a trajectory."""
        return None
