"""Every random draw of a run, and why most of them come from torch's global generator.

A run's numbers are reproducible because its draws happen in one fixed order. After `seed_model_init(seed)`
the global generator gives, in this order:

1. the model's initial weights (`Task.build_model`, on the CPU, as the notebooks and nanoGPT initialise);
2. the minibatch order (`optbench.data.sampling`): the two int64 draws each epoch of the notebooks'
   `DataLoader(shuffle=True)` takes (a DeepOBS batching takes one, to seed its own sampler);
3. one int64 per test evaluation (`consume_test_pass_draw`): what iterating the notebooks' test DataLoader
   draws; it moves every later epoch's order;
4. a 2-D function's gradient noise, each step (`tasks.functions`);
5. the language model's dropout masks, where dropout is on (nanoGPT draws them from the global generator).
   Its training windows come from a snapshot of the global state taken as training starts, so dropout never
   moves them (`snapshot_global`); with nanoGPT's estimate (`task.eval_iters`) they, and the estimate's
   windows, come from the global generator itself, interleaved with dropout's draws as nanoGPT's train.py
   interleaves them (its numbers, not independence, are the point there).

These must stay on the global generator: that is how the references (the course notebooks' loop, nanoGPT's
`train.py`) draw, and optbench reproduces their numbers exactly. DeepOBS's quadratic draws from NumPy
RandomStates of its own (`tasks.quadratic`), as DeepOBS does.

So: a new random draw (augmentation, a diagnostic's probe, a new task's noise) takes a generator of its own
(`torch.Generator().manual_seed(...)`), never the global one, or it silently moves every later batch of every run. The vectorised
engine gives each member the global state its single run would have (`snapshot_global` after the member's
init) and lets the member's draws come from it (`drawing_from`), so each member replays its single run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def seed_model_init(seed: int) -> None:
    """Seed the global generator; the model is built right after, on the CPU (draw 1 above)."""
    torch.manual_seed(seed)


def draw_int64(generator: torch.Generator | None = None) -> int:
    """Draw one int64 from `generator` (the global one by default), exactly as DataLoader and RandomSampler do."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


def consume_test_pass_draw(generator: torch.Generator | None = None) -> None:
    """Advance the global generator (or `generator`) as iterating the (unshuffled) test DataLoader would."""
    draw_int64(generator)


def snapshot_global() -> torch.Generator:
    """A generator holding the global generator's current state; drawing from it never moves the global one."""
    generator = torch.Generator()
    generator.set_state(torch.get_rng_state())
    return generator


@contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Let code that draws from the global generator draw from `generator` instead, then put both back."""
    saved = torch.get_rng_state()
    torch.set_rng_state(generator.get_state())
    try:
        yield
    finally:
        generator.set_state(torch.get_rng_state())
        torch.set_rng_state(saved)
