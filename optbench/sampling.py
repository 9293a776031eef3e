"""Minibatch order that draws the same random numbers as the notebooks' DataLoaders.

The reference loop iterates `DataLoader(train, batch_size, shuffle=True)` epoch after epoch and an
unshuffled test DataLoader at each evaluation (torch >= 1.9, num_workers=0, no generator). Each time
a DataLoader is iterated it draws one int64 from the global generator (`_base_seed`); a shuffling
RandomSampler then draws another int64 on the first `next()`, seeds a fresh generator with it and
takes `randperm(n)`. Drawing the same numbers at the same moments, optbench reproduces the
notebooks' batches (and everything drawn from the global generator afterwards) exactly, while its
batches are plain index gathers on tensors already on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def _draw_int64() -> int:
    """Draw one int64 from the global generator, exactly as DataLoader and RandomSampler do."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


def consume_test_pass_draw() -> None:
    """Advance the global generator as iterating the (unshuffled) test DataLoader would."""
    _draw_int64()


def shuffled_batches(n: int, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Yield index tensors of minibatches for endless epochs, as `DataLoader(shuffle=True)`."""
    while True:
        _draw_int64()  # _BaseDataLoaderIter.__init__: the worker base seed, unused with 0 workers
        generator = torch.Generator()
        generator.manual_seed(_draw_int64())  # RandomSampler.__iter__, on the first next()
        order = torch.randperm(n, generator=generator).to(device)
        yield from order.split(batch_size)  # last batch smaller, as drop_last=False
