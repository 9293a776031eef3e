"""DeepOBS's noisy quadratic with a deep-learning-like Hessian spectrum (`quadratic_deep`).

The loss of one example x is 0.5 (theta - x)^T H (theta - x); the examples are fixed draws of
N(0, noise^2 I). H = R^T diag(lambda) R with 90% of the eigenvalues in (0, 1) and 10% in (30, 60)
(Chaudhari et al. 2017's observed spectrum) and R a Haar-random rotation. The problem instance
(H and the splits) is fixed by `instance_seed` alone, independent of the run's `seed`; with the
defaults it is DeepOBS's instance (NumPy RandomState(42); data seeds 42 train, 43 test and, as
DeepOBS's PyTorch version, 44 validation). DeepOBS's TensorFlow input pipeline, which made its
published baselines, is the preset's `batching` (see `optbench.data.sampling.Batching`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from optbench.config.validation import fixed_batch
from optbench.tasks.base import Evaluation, StepLoss, Task


def random_rotation(dim: int, rng: np.random.RandomState) -> np.ndarray:
    """A Haar-random rotation in SO(dim) by Diaconis & Shahshahani's subgroup algorithm (as DeepOBS)."""
    t = 2 * np.pi * rng.uniform()
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v /= np.sqrt(v.T @ v)
        e = np.zeros((d + 1, 1))
        e[0, 0] = 1.0
        x = (e - v) / np.sqrt((e - v).T @ (e - v))  # a random coset of SO(d) in SO(d+1)
        embedded = np.block([[np.ones((1, 1)), np.zeros((1, d))], [np.zeros((d, 1)), rotation]])
        rotation = embedded - 2 * np.outer(x, x.T @ embedded)
    return -rotation  # the sign makes the determinant +1


def deep_learning_hessian(dim: int, rng: np.random.RandomState) -> np.ndarray:
    """R^T (diag(lambda) R): 90% of the eigenvalues uniform in (0, 1), 10% in (30, 60), multiplied in
    DeepOBS's order (the other association differs in the last float64 bits)."""
    small = round(0.9 * dim)
    eigenvalues = np.concatenate((rng.uniform(0.0, 1.0, small), rng.uniform(30.0, 60.0, dim - small)))
    rotation = random_rotation(dim, rng)
    return rotation.T @ (np.diag(eigenvalues) @ rotation)


class QuadraticModel(nn.Module):
    """theta (starting at all ones, as DeepOBS); the output is each example's quadratic loss."""

    def __init__(self, hessian: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.ones(len(hessian)))
        self.register_buffer("hessian", hessian)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """0.5 (theta - x)^T H (theta - x) for each row x of `examples`."""
        q = self.theta - examples
        return 0.5 * ((q @ self.hessian) * q).sum(dim=1)


class NoisyQuadratic(Task):
    """Minimise the expected quadratic loss from minibatches of noisy examples."""

    kind = "function"

    def __init__(
        self,
        name: str,
        target: Mapping[str, Any],
        dim: int = 100,
        train_size: int = 1000,
        noise: float = 0.6,
        instance_seed: int = 42,
        description: str = "",
        batching: Any = None,
        validation: bool = False,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(name, target, description, batching, validation, batch_size)
        self.dim, self.size, self.noise, self.instance_seed = dim, train_size, noise, instance_seed

    @property
    def data_name(self) -> str:
        """`quadratic`."""
        return "quadratic"

    @property
    def train_size(self) -> int:
        """Number of fixed noisy examples in the training split."""
        return self.size

    def _draw(self, offset: int, device: torch.device) -> torch.Tensor:
        """`train_size` examples from RandomState(instance_seed + offset), as float32 (DeepOBS's draws)."""
        rng = np.random.RandomState(self.instance_seed + offset)
        return torch.from_numpy(np.float32(rng.normal(0.0, self.noise, (self.size, self.dim)))).to(device)

    def setup(self, device: torch.device) -> None:
        """Draw the problem instance: the Hessian and the splits, from `instance_seed` only."""
        hessian = deep_learning_hessian(self.dim, np.random.RandomState(self.instance_seed))
        self.hessian = torch.from_numpy(np.float32(hessian))
        self.train, self.test = self._draw(0, device), self._draw(1, device)
        self.valid = self._draw(2, device) if self.validation else None

    def build_model(self) -> nn.Module:
        """theta in R^dim, starting at all ones."""
        return QuadraticModel(self.hessian)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Index tensors of minibatches of the training examples (evaluations use the examples that whole
        batches of the configured size cover, as the batching says)."""
        return self.batching.batches(self.size, batch_size, self.train.device)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> StepLoss:
        """Mean quadratic loss over the minibatch's examples."""
        return StepLoss(model(self.train.index_select(0, batch)).mean(), len(batch))

    def sharpness_loss(self, size: int | None) -> Callable[[nn.Module], torch.Tensor]:
        """The mean loss over the first `size` training examples: its Hessian is the problem's own, whatever the
        noise (so the sharpness is the Hessian's top eigenvalue, in (30, 60))."""
        examples = self.train[: fixed_batch(size, self.size, self.name)]
        return lambda model: model(examples).mean()

    def evaluate(self, model: nn.Module, split: str = "test") -> Evaluation:
        """Mean quadratic loss over the test (or validation) examples an evaluation uses."""
        examples = self.test if split == "test" else self.valid
        return Evaluation(model(examples[: self.eval_rows(len(examples))]).mean().item())
