"""The reference notebooks' training loop, kept verbatim in spirit: the baseline optbench must match.

`torch.manual_seed(seed)`, the MLP built, `DataLoader(train, batch_size, shuffle=True)` iterated
epoch after epoch, and an unshuffled test DataLoader iterated every `eval_every` iterations.
`per_sample_transforms=True` is the notebooks' own pipeline (torchvision dataset + ToTensor per
sample); False feeds the same DataLoaders a TensorDataset of the same ToTensor'd images: the same
random draws and identical batches, much faster, for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class NotebookResult:
    """Test accuracies (percent) at each evaluation, per-iteration losses, and seconds taken."""

    test_accuracy: list[float]
    train_loss: list[float]
    seconds: float


def _datasets(root: Path, per_sample_transforms: bool):
    from torchvision import datasets, transforms

    train = datasets.MNIST(root, train=True, transform=transforms.ToTensor())
    test = datasets.MNIST(root, train=False, transform=transforms.ToTensor())
    if per_sample_transforms:
        return train, test

    def as_tensors(ds: datasets.MNIST) -> TensorDataset:
        return TensorDataset(ds.data.to(torch.float32).div(255).unsqueeze(1), ds.targets)

    return as_tensors(train), as_tensors(test)


def notebook_run(
    make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
    root: Path,
    *,
    iterations: int = 3000,
    batch_size: int = 100,
    eval_every: int = 500,
    seed: int = 0,
    hidden: int = 100,
    per_sample_transforms: bool = True,
    device: torch.device | str = "cpu",
) -> NotebookResult:
    """Train the notebooks' 784-hidden-10 MLP their way and record what they printed. On a GPU, as a
    notebook does there: the model moved once, each batch moved as the DataLoader yields it."""
    train_set, test_set = _datasets(root, per_sample_transforms)
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = make_optimizer(list(model.parameters()))
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)

    accuracies, losses, iteration = [], [], 0
    while iteration < iterations:
        for images, labels in train_loader:
            optimizer.zero_grad()
            images, labels = images.to(device), labels.to(device)
            loss = criterion(model(images.view(-1, 784)), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            iteration += 1
            if iteration % eval_every == 0 or iteration == iterations:
                correct = total = 0
                with torch.no_grad():
                    for test_images, test_labels in test_loader:
                        test_images, test_labels = test_images.to(device), test_labels.to(device)
                        predicted = model(test_images.view(-1, 784)).argmax(dim=1)
                        total += test_labels.size(0)
                        correct += (predicted == test_labels).sum().item()
                accuracies.append(100 * correct / total)
            if iteration == iterations:
                break
    return NotebookResult(accuracies, losses, time.perf_counter() - started)
