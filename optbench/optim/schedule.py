"""Schedule group: the learning rate over the run, built from torch.optim.lr_scheduler's pieces.

Each schedule is a function `(optimizer, iterations, **settings) -> LRScheduler | None` named by a
`_partial_` config in `configs/schedule/` (its settings checked by `optbench.config.validation`); the trainer steps the scheduler once per iteration,
after the optimizer. `constant` builds none, so its runs are exactly the runs without a schedule.
"""

from __future__ import annotations

import math

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR, StepLR

from optbench.errors import OptbenchError


def phase_steps(value: float, iterations: int) -> int:
    """A phase's length in steps: `value` steps (>= 1), or that fraction of the run (below 1)."""
    return math.ceil(value * iterations) if value < 1 else int(value)


def constant(optimizer: Optimizer, iterations: int) -> None:
    """The optimizer's lr throughout (no scheduler: numbers identical to a run without one)."""
    return None


def step(optimizer: Optimizer, iterations: int, step_size: float = 0.33, gamma: float = 0.1) -> LRScheduler:
    """Multiply the lr by `gamma` every `step_size` steps (torch's StepLR)."""
    return StepLR(optimizer, phase_steps(step_size, iterations), gamma)


def cosine(optimizer: Optimizer, iterations: int, min_factor: float = 0.0) -> LRScheduler:
    """Cosine decay from the lr to `min_factor` x lr over the run (torch's CosineAnnealingLR)."""
    return CosineAnnealingLR(optimizer, T_max=iterations, eta_min=min_factor * _lr(optimizer))


def warmup_cosine(
    optimizer: Optimizer, iterations: int, warmup: float = 0.05, start_factor: float = 0.01, min_factor: float = 0.0
) -> LRScheduler:
    """Linear warm-up from `start_factor` x lr over `warmup` steps, then cosine decay to `min_factor` x lr."""
    warm = phase_steps(warmup, iterations)
    ramp = LinearLR(optimizer, start_factor, 1.0, total_iters=warm)
    decay = CosineAnnealingLR(optimizer, T_max=iterations - warm, eta_min=min_factor * _lr(optimizer))
    return SequentialLR(optimizer, [ramp, decay], milestones=[warm])


def wsd(
    optimizer: Optimizer,
    iterations: int,
    warmup: float = 0.05,
    decay: float = 0.2,
    start_factor: float = 0.01,
    end_factor: float = 0.0,
) -> LRScheduler:
    """Warmup-stable-decay: linear warm-up, the lr held, then a linear decay to `end_factor` x lr over the last `decay` steps."""
    warm, cool = phase_steps(warmup, iterations), phase_steps(decay, iterations)
    phases = [
        LinearLR(optimizer, start_factor, 1.0, total_iters=warm),
        ConstantLR(optimizer, factor=1.0, total_iters=iterations - warm - cool),
        LinearLR(optimizer, 1.0, end_factor, total_iters=cool),
    ]
    return SequentialLR(optimizer, phases, milestones=[warm, iterations - cool])


def linear(optimizer: Optimizer, iterations: int, end_factor: float = 0.0) -> LRScheduler:
    """Linear decay from the lr to `end_factor` x lr over the run (torch's LinearLR)."""
    return LinearLR(optimizer, 1.0, end_factor, total_iters=iterations)


def nanogpt_lr(it: int, learning_rate: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> float:
    """nanoGPT's `get_lr(it)` (train.py at 3adf61e), the same float operations in the same order."""
    if it < warmup_iters:  # 1) linear warmup for warmup_iters steps
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:  # 2) past lr_decay_iters, min_lr
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)  # 3) in between, cosine down to min_lr
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


class NanoGPTLR(LRScheduler):
    """nanoGPT's schedule: step i (from 1) uses `nanogpt_lr(i - 1, ...)`, set directly (not as a factor of the
    lr), so the lr is nanoGPT's float. Each parameter group uses its own lr as `learning_rate`, and `min_lr`
    scaled by its lr over the first group's (None: a tenth of its lr, nanoGPT's rule of thumb)."""

    def __init__(self, optimizer: Optimizer, warmup_iters: int, lr_decay_iters: int, min_lr: float | None) -> None:
        self.warmup_iters, self.lr_decay_iters = warmup_iters, lr_decay_iters
        first = optimizer.param_groups[0]["lr"]
        self.min_lrs = [
            lr / 10 if min_lr is None else min_lr * lr / first if first and lr != first else min_lr
            for lr in (group["lr"] for group in optimizer.param_groups)
        ]
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        """The lr of every group for the next step (`last_epoch` is nanoGPT's `iter_num`)."""
        return [
            nanogpt_lr(self.last_epoch, base, floor, self.warmup_iters, self.lr_decay_iters)
            for base, floor in zip(self.base_lrs, self.min_lrs)
        ]


def nanogpt(
    optimizer: Optimizer,
    iterations: int,
    warmup_iters: int = 100,
    lr_decay_iters: int | None = None,
    min_lr: float | None = 1e-4,
) -> LRScheduler:
    """nanoGPT's `get_lr`: linear warm-up over `warmup_iters`, cosine to `min_lr` at `lr_decay_iters` (None: the run's
    length), then `min_lr`."""
    return NanoGPTLR(optimizer, warmup_iters, iterations if lr_decay_iters is None else lr_decay_iters, min_lr)


def _lr(optimizer: Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


def build_schedule(cfg: DictConfig, optimizer: Optimizer, iterations: int, name: str) -> LRScheduler | None:
    """The configured schedule `name` for `optimizer` over `iterations` steps (None for `constant`)."""
    try:
        return instantiate(cfg, _convert_="all")(optimizer, iterations)
    except (InstantiationException, TypeError, ValueError) as exc:
        raise OptbenchError(
            f"schedule={name} could not be built from its configuration: {exc}. Check the schedule.* "
            f"overrides against configs/schedule/{name}.yaml (e.g. schedule.warmup=200)."
        ) from exc
