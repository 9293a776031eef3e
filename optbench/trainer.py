"""The training loop: minibatch steps on device-resident tensors, evaluation on the full test split.

Per-iteration loss and correct-count stay on the device between evaluations (no host sync per
step); at each evaluation they are copied to the host once, checked for divergence and appended to
train.csv, and the test split is evaluated and appended to test.csv.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from optbench.data import Dataset
from optbench.optim import Lookahead
from optbench.records import RunRecords
from optbench.sampling import consume_test_pass_draw, shuffled_batches

log = logging.getLogger(__name__)

EVAL_CHUNK = 10_000  # test examples per forward pass: bounds memory on large test splits


@dataclass
class Outcome:
    """How a training run ended and the numbers its summary needs."""

    status: str = "running"  # completed | diverged | interrupted
    iterations_run: int = 0
    diverged_at: int | None = None
    divergence: str | None = None  # why the run was stopped as diverged
    test_accuracy: list[tuple[int, float]] = field(default_factory=list)
    last_train_loss: float | None = None
    test_loss: float | None = None


def loss_function(task: str, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy for classification, mean squared error for regression."""
    if task == "regression":
        return F.mse_loss(outputs.squeeze(-1), targets, reduction=reduction)
    return F.cross_entropy(outputs, targets, reduction=reduction)


def count_correct(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of examples whose highest-scoring class is the label (a 0-d tensor, no sync)."""
    return (outputs.argmax(dim=1) == labels).sum()


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset) -> tuple[float, float]:
    """Mean loss and accuracy (fraction; NaN for regression) of `model` on the whole test split."""
    if not data.full_batch:
        consume_test_pass_draw()  # what iterating the notebooks' test DataLoader draws
    split = data.test
    model.eval()
    loss_sum = torch.zeros((), device=split.labels.device)
    correct = torch.zeros((), dtype=torch.int64, device=split.labels.device)
    for inputs, labels in split.chunks(EVAL_CHUNK):
        outputs = model(inputs)
        loss_sum += loss_function(data.task, outputs, labels, reduction="sum")
        if data.classification:
            correct += count_correct(outputs, labels)
    model.train()
    accuracy = correct.item() / len(split) if data.classification else math.nan
    return loss_sum.item() / len(split), accuracy


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Lookahead,
    data: Dataset,
    records: RunRecords,
    *,
    iterations: int,
    batch_size: int,
    eval_every: int,
    divergence_factor: float | None = 1000.0,
    progress: bool = True,
) -> Outcome:
    """Train for `iterations` minibatch steps, evaluating every `eval_every` steps and at the end.

    The run stops as diverged at the first non-finite loss, or at the first loss above
    `divergence_factor` times the first iteration's loss (None: non-finite losses only).
    """
    device = data.train.labels.device
    classification = data.classification
    outcome = Outcome()
    # Metrics of the iterations since the last flush, kept on the device.
    losses = torch.empty(min(eval_every, iterations), device=device)
    correct = torch.empty(min(eval_every, iterations), dtype=torch.int64, device=device)
    sizes: list[int] = []
    flushed = 0  # iterations already written to train.csv
    limit = math.inf  # loss above which the run counts as diverged, set from the first loss

    def flush() -> bool:
        """Write pending train rows up to the first diverged one (if any). False if diverged."""
        nonlocal flushed, limit
        pending = len(sizes)
        loss_values = losses[:pending].tolist()
        accuracies = ([c / s for c, s in zip(correct[:pending].tolist(), sizes)] if classification
                      else [""] * pending)  # accuracy is not defined for regression: left empty
        if flushed == 0 and pending and divergence_factor and math.isfinite(loss_values[0]):
            limit = divergence_factor * loss_values[0]
        good = next((i for i, v in enumerate(loss_values) if not math.isfinite(v) or v > limit), pending)
        records.train.append(flushed + 1, loss_values[:good], accuracies[:good])
        if good:
            outcome.last_train_loss = loss_values[good - 1]
        flushed += good
        sizes.clear()
        if good < pending:
            outcome.diverged_at = flushed + 1
            bad = loss_values[good]
            outcome.divergence = (f"loss {bad} is not finite" if not math.isfinite(bad) else
                                  f"loss {bad:.4g} exceeded {divergence_factor:g} x the first loss ({limit / divergence_factor:.4g})")
            return False
        return True

    if data.full_batch:
        batches = itertools.repeat(torch.arange(len(data.train), device=device))
    else:
        batches = shuffled_batches(len(data.train), batch_size, device)
    bar = tqdm(total=iterations, desc="train", unit="it", disable=None if progress else True, leave=False)
    try:
        for iteration in range(1, iterations + 1):
            index = next(batches)
            inputs, labels = data.train.batch(index)
            outputs = model(inputs)
            loss = loss_function(data.task, outputs, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            slot = len(sizes)
            losses[slot] = loss.detach()
            if classification:
                correct[slot] = count_correct(outputs, labels)
            sizes.append(len(index))
            outcome.iterations_run = iteration
            bar.update()

            if iteration % eval_every == 0 or iteration == iterations:
                if not flush():
                    outcome.status = "diverged"
                    outcome.iterations_run = flushed
                    log.warning("diverged at iteration %d (%s): stopping", outcome.diverged_at, outcome.divergence)
                    return outcome
                test_loss, test_accuracy = evaluate(model, data)
                records.test.append(iteration, [test_loss], [test_accuracy if classification else ""])
                outcome.test_loss = test_loss
                if classification:
                    outcome.test_accuracy.append((iteration, test_accuracy))
                bar.set_postfix(loss=f"{outcome.last_train_loss:.4f}",
                                **({"test_acc": f"{100 * test_accuracy:.2f}%"} if classification
                                   else {"test_loss": f"{test_loss:.4f}"}))
                log.info(
                    "iteration %d: train loss %.4f | test loss %.4f%s", iteration, outcome.last_train_loss,
                    test_loss, f" | test accuracy {100 * test_accuracy:.2f}%" if classification else "",
                )
        outcome.status = "completed"
    except KeyboardInterrupt:
        # Keep every completed iteration: iterations_run counts only fully recorded steps.
        del sizes[outcome.iterations_run - flushed:]
        flush()
        outcome.status = "interrupted"
        log.warning("interrupted after %d iterations", outcome.iterations_run)
    finally:
        bar.close()
    return outcome
