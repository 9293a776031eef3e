"""Supervised tasks over the `dataset` and `model` groups: MNIST / Fashion-MNIST classifiers, thermometer."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_object
from omegaconf import DictConfig
from torch import nn

from optbench.config.validation import check_train_examples, fixed_batch
from optbench.data.datasets import Dataset, load_dataset
from optbench.data.sampling import Batching
from optbench.model import MLP, build_model
from optbench.runtime.randomness import consume_test_pass_draw
from optbench.tasks.base import Evaluation, StepLoss, Task

EVAL_CHUNK = 10_000  # test examples per forward pass: bounds memory on large test splits


def loss_function(
    kind: str, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean", loss: str = "cross_entropy"
) -> torch.Tensor:
    """Cross-entropy for classification (or, with `loss="squared"`, Cohen et al.'s squared loss against the one-hot
    labels, 0.5 ||f(x) - onehot(y)||^2 per example), mean squared error for regression."""
    if kind == "regression":
        return F.mse_loss(outputs.squeeze(-1), targets, reduction=reduction)
    if loss == "squared":
        per_example = 0.5 * (outputs - F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)).square().sum(dim=-1)
        return per_example.mean() if reduction == "mean" else per_example.sum()
    return F.cross_entropy(outputs, targets, reduction=reduction)


def count_correct(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of examples whose highest-scoring class is the label (a 0-d tensor, no sync)."""
    return (outputs.argmax(dim=1) == labels).sum()


class Supervised(Task):
    """A model from the `model` group trained on a dataset from the `dataset` group.

    By default minibatches are drawn exactly as the notebooks' `DataLoader(shuffle=True)` draws them,
    and each test evaluation consumes the test DataLoader's draw, so `mnist_mlp` reproduces the
    notebooks bit for bit. A task's `batching` changes that (fmnist_2c2d: DeepOBS's pipeline).
    """

    def __init__(
        self,
        name: str,
        target: Mapping[str, Any],
        dataset: DictConfig,
        model: DictConfig,
        description: str = "",
        batching: Any = None,
        validation: bool = False,
        batch_size: int | None = None,
        train_examples: int | None = None,
        full_batch: bool | None = None,
        loss: str = "cross_entropy",
    ) -> None:
        super().__init__(name, target, description, batching, validation, batch_size)
        self.dataset_cfg = dataset
        self.model_cfg = model
        self.data: Dataset | None = None
        self.train_examples = train_examples  # train on the training split's first N examples only
        self.full_batch_option = full_batch  # None: as the dataset says
        self.loss_name = loss

    @property
    def data_name(self) -> str:
        """The dataset's name (`mnist`, `fashion_mnist`, `thermometer`)."""
        return self.dataset_cfg.name

    @property
    def train_size(self) -> int:
        """Examples in the training split."""
        return len(self.data.train)

    @property
    def kind(self) -> str:
        """The dataset's kind: `classification` or `regression` (the thermometer)."""
        return self.data.kind

    @property
    def full_batch(self) -> bool:
        """True when every step uses the whole training split: `task.full_batch`, else the dataset's (the
        thermometer)."""
        return self.data.full_batch if self.full_batch_option is None else self.full_batch_option

    def solo_reason(self) -> str | None:
        """Minibatch classification on MNIST or Fashion-MNIST with an MLP and the notebooks' batches widens."""
        if self.dataset_cfg.name not in ("mnist", "fashion_mnist"):
            return super().solo_reason()
        if get_object(self.model_cfg._target_) is not MLP:
            return (
                f"task={self.name} uses a model that is not an MLP (only stacks of Linear and ReLU layers are widened)"
            )
        if self.model_cfg.get("activation", "relu") != "relu":
            return f"task={self.name}'s MLP uses {self.model_cfg.activation}, not ReLU (only ReLU stacks are widened)"
        if self.loss_name != "cross_entropy":
            return f"task={self.name} uses task.loss={self.loss_name} (the wide model's backward is cross-entropy's)"
        if self.full_batch_option or self.train_examples is not None:
            return f"task={self.name} trains full-batch or on the first task.train_examples (the wide model draws the notebooks' batches)"
        if self.batching != Batching():
            return f"task={self.name} cuts its epochs its own way (task.batching); the wide model draws the notebooks' batches"
        return None

    def setup(self, device: torch.device) -> None:
        """Load the splits (the training split's first `train_examples`) and move them to `device`."""
        data = load_dataset(self.dataset_cfg, self.validation)
        if self.train_examples is not None:
            check_train_examples(self.train_examples, len(data.train), self.name)
            data = replace(data, train=data.train.subset(torch.arange(self.train_examples)))
        self.data = data.to(device)

    def build_model(self) -> nn.Module:
        """The configured model, sized for the dataset's features and classes."""
        return build_model(self.model_cfg, self.data.num_features, self.data.num_classes)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """Index tensors of minibatches: shuffled epochs, or the whole split every step. The order is drawn
        from the global generator, or from `generator` (a vectorised member's own stream)."""
        device = self.data.train.labels.device
        if self.full_batch:
            return itertools.repeat(torch.arange(self.train_size, device=device))
        return self.batching.batches(self.train_size, batch_size, device, generator)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> StepLoss:
        """Mean loss of the minibatch at the indices `batch`, and its correct count."""
        inputs, labels = self.data.train.batch(batch)
        outputs = model(inputs)
        correct = count_correct(outputs, labels) if self.has_accuracy else None
        return StepLoss(loss_function(self.kind, outputs, labels, loss=self.loss_name), len(batch), correct)

    def sharpness_loss(self, size: int | None) -> Callable[[nn.Module], torch.Tensor]:
        """The mean loss over the first `size` training examples (Cohen et al.'s abridged training set)."""
        count = fixed_batch(size, self.train_size, self.name)
        inputs, labels = self.data.train.batch(torch.arange(count, device=self.data.train.labels.device))
        return lambda model: loss_function(self.kind, model(inputs), labels, loss=self.loss_name)

    def evaluate(self, model: nn.Module, split: str = "test") -> Evaluation:
        """Mean loss and accuracy on the test (or validation) split: every example, or as the batching
        says, the first whole batches of the training batch size."""
        if split == "test" and not self.full_batch and self.batching.dataloader:
            consume_test_pass_draw()  # what iterating the notebooks' test DataLoader draws
        data = self.data.test if split == "test" else self.data.valid
        size = self.eval_rows(len(data))
        loss_sum = torch.zeros((), device=data.labels.device)
        correct = torch.zeros((), dtype=torch.int64, device=data.labels.device)
        for inputs, labels in data.chunks(EVAL_CHUNK, size):
            outputs = model(inputs)
            loss_sum += loss_function(self.kind, outputs, labels, reduction="sum", loss=self.loss_name)
            if self.has_accuracy:
                correct += count_correct(outputs, labels)
        return Evaluation.of_sums(loss_sum, correct if self.has_accuracy else None, size)
