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


def _draw_int64(generator: torch.Generator | None = None) -> int:
    """Draw one int64 from `generator` (the global one by default), exactly as DataLoader and RandomSampler do."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def consume_test_pass_draw(generator: torch.Generator | None = None) -> None:
    """Advance the global generator (or `generator`) as iterating the (unshuffled) test DataLoader would."""
    _draw_int64(generator)


def shuffled_batches(n: int, batch_size: int, device: torch.device,
                     generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield index tensors of minibatches for endless epochs, as `DataLoader(shuffle=True)`.

    The draws come from the global generator, or from `generator` (a vectorised sweep gives each
    member its own, holding the state the global one would have in that member's single run).
    """
    while True:
        _draw_int64(generator)  # _BaseDataLoaderIter.__init__: the worker base seed, unused with 0 workers
        sampler = torch.Generator()
        sampler.manual_seed(_draw_int64(generator))  # RandomSampler.__iter__, on the first next()
        order = torch.randperm(n, generator=sampler).to(device)
        yield from order.split(batch_size)  # last batch smaller, as drop_last=False
