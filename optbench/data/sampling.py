"""Minibatch order that draws the same random numbers as the notebooks' DataLoaders.

The reference loop iterates `DataLoader(train, batch_size, shuffle=True)` epoch after epoch and an
unshuffled test DataLoader at each evaluation (torch >= 1.9, num_workers=0, no generator). Each time
a DataLoader is iterated it draws one int64 from the global generator (`_base_seed`); a shuffling
RandomSampler then draws another int64 on the first `next()`, seeds a fresh generator with it and
takes `randperm(n)`. Drawing the same numbers at the same moments, optbench reproduces the
notebooks' batches (and everything drawn from the global generator afterwards) exactly, while its
batches are plain index gathers on tensors already on the device. Every draw of a run, in order:
`optbench.runtime.randomness`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from optbench.runtime.device import upload
from optbench.runtime.randomness import draw_int64


def shuffled_batches(
    n: int, batch_size: int, device: torch.device, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Yield index tensors of minibatches for endless epochs, as `DataLoader(shuffle=True)`.

    The draws come from the global generator, or from `generator` (a vectorised sweep gives each
    member its own, holding the state the global one would have in that member's single run).
    """
    while True:
        draw_int64(generator)  # _BaseDataLoaderIter.__init__: the worker base seed, unused with 0 workers
        sampler = torch.Generator()
        sampler.manual_seed(draw_int64(generator))  # RandomSampler.__iter__, on the first next()
        order = upload(torch.randperm(n, generator=sampler), device)
        yield from order.split(batch_size)  # last batch smaller, as drop_last=False


def buffer_shuffle(n: int, buffer_size: int, generator: torch.Generator) -> torch.Tensor:
    """The order in which `tf.data.Dataset.shuffle(buffer_size)` emits `n` examples: each output is a
    uniform pick from a buffer filled in input order and refilled after every pick.

    With `buffer_size >= n` this is a uniform permutation. A smaller buffer shuffles only locally:
    Fashion-MNIST's 60,000 images through DeepOBS's 20,000-slot buffer. TensorFlow's own Philox draws
    cannot be reproduced, so only the distribution of orders is TensorFlow's.
    """
    if buffer_size >= n:
        return torch.randperm(n, generator=generator)
    picks = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    buffer, order, following = list(range(buffer_size)), [], buffer_size
    for u in picks:
        slot = int(u * len(buffer))
        order.append(buffer[slot])
        if following < n:  # the next input example takes the emptied slot
            buffer[slot] = following
            following += 1
        else:  # input exhausted: the buffer drains
            buffer[slot] = buffer[-1]
            buffer.pop()
    return torch.tensor(order)


@dataclass(frozen=True)
class Batching:
    """How an epoch is cut into minibatches and which test examples an evaluation uses.

    The default is the notebooks' `DataLoader(shuffle=True)`: a new order every epoch drawn as the
    DataLoader draws it, a smaller last batch, every test example. DeepOBS's TensorFlow pipeline, as its
    baselines actually ran, differs in three ways (`configs/task/quadratic_deep.yaml`): whole batches
    only (`drop_last`, the remainder dropped after shuffling; evaluations likewise use whole batches:
    the first 896 of quadratic_deep's 1,000 test examples), a `tf.data` shuffle buffer
    (`shuffle_buffer`), and one order for the whole run (`reshuffle: false`): with
    `tf.set_random_seed` its re-initialised iterator replays the same order every epoch.
    """

    drop_last: bool = False
    reshuffle: bool = True
    shuffle_buffer: int | None = None  # None: a full permutation (DataLoader)

    @classmethod
    def from_config(cls, node: object) -> Batching:
        """A task's `batching` mapping (checked by `optbench.config.validation.check_batching`; None: the DataLoader's way)."""
        return cls() if node is None else cls(**dict(node))

    @property
    def dataloader(self) -> bool:
        """True for the notebooks' DataLoader semantics (whose random draws optbench replays)."""
        return self == Batching()

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """Minibatches in one pass over `n` examples."""
        return n // batch_size if self.drop_last else math.ceil(n / batch_size)

    def eval_size(self, n: int, batch_size: int) -> int:
        """How many of `n` evaluation examples (from the first) an evaluation uses: whole batches only when dropping."""
        return max(1, n // batch_size) * batch_size if self.drop_last and batch_size <= n else n

    def batches(
        self, n: int, batch_size: int, device: torch.device, generator: torch.Generator | None = None
    ) -> Iterator[torch.Tensor]:
        """Endless minibatches of indices into `n` examples, from the global generator's draws (or `generator`'s:
        a vectorised member's, holding the state its single run's global generator would)."""
        if self.dataloader:
            return shuffled_batches(n, batch_size, device, generator)
        return self._tf_batches(n, batch_size, device, generator)

    def _tf_batches(
        self, n: int, batch_size: int, device: torch.device, generator: torch.Generator | None
    ) -> Iterator[torch.Tensor]:
        sampler = torch.Generator()
        sampler.manual_seed(draw_int64(generator))  # from the seeded global generator, after the model's init
        order = None
        while True:
            if order is None or self.reshuffle:
                order = upload(buffer_shuffle(n, self.shuffle_buffer or n, sampler), device)
            for start in range(0, self.steps_per_epoch(n, batch_size) * batch_size, batch_size):
                yield order[start : start + batch_size]


class Prefetching(Iterator[Any]):
    """An endless batch stream that can draw its next batch early (`prefetch`), handed out by the next `next()`:
    nanoGPT draws the next training batch right after each forward pass, before an evaluation draws its own."""

    def __init__(self, source: Iterator[Any]) -> None:
        self.source = source
        self.pending: list[Any] = []  # the batch drawn early, if any

    def prefetch(self) -> None:
        """Draw the next batch now (once: a second call before `next()` draws nothing)."""
        if not self.pending:
            self.pending.append(next(self.source))

    def __next__(self) -> Any:
        return self.pending.pop() if self.pending else next(self.source)
