"""Schedule group: the learning rate over the run, built from torch.optim.lr_scheduler's pieces.

Each schedule is a function `(optimizer, iterations, **settings) -> LRScheduler | None` named by a
`_partial_` config in `configs/schedule/`; the trainer steps the scheduler once per iteration,
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


def _steps(name: str, value: float, iterations: int, example: str) -> int:
    """A phase length given as steps (>= 1) or as a fraction of the run (0 < value < 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise OptbenchError(f"schedule.{name}={value!r} must be a positive number of steps, or a fraction of the "
                            f"run below 1 (e.g. {example}).")
    steps = math.ceil(value * iterations) if value < 1 else int(value)
    if steps >= iterations:
        raise OptbenchError(f"schedule.{name}={value!r} is {steps} steps, not shorter than the whole run "
                            f"(iterations={iterations}). Use fewer, e.g. {example}.")
    return steps


def _factor(name: str, value: float, example: str, low_open: bool = False) -> float:
    """A multiplier of the optimizer's lr in [0, 1] ((0, 1] when `low_open`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise OptbenchError(f"schedule.{name}={value!r} must be a fraction of the optimizer's lr in {interval}, e.g. {example}.")
    return float(value)


def constant(optimizer: Optimizer, iterations: int) -> None:
    """The optimizer's lr throughout (no scheduler: numbers identical to a run without one)."""
    return None


def step(optimizer: Optimizer, iterations: int, step_size: float = 0.33, gamma: float = 0.1) -> LRScheduler:
    """Multiply the lr by `gamma` every `step_size` steps (torch's StepLR)."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise OptbenchError(f"schedule.gamma={gamma!r} must be a factor in (0, 1], e.g. schedule.gamma=0.1.")
    return StepLR(optimizer, _steps("step_size", step_size, iterations, "schedule.step_size=1000"), gamma)


def cosine(optimizer: Optimizer, iterations: int, min_factor: float = 0.0) -> LRScheduler:
    """Cosine decay from the lr to `min_factor` x lr over the run (torch's CosineAnnealingLR)."""
    return CosineAnnealingLR(optimizer, T_max=iterations,
                             eta_min=_factor("min_factor", min_factor, "schedule.min_factor=0.0") * _lr(optimizer))


def warmup_cosine(optimizer: Optimizer, iterations: int, warmup: float = 0.05, start_factor: float = 0.01,
                  min_factor: float = 0.0) -> LRScheduler:
    """Linear warm-up from `start_factor` x lr over `warmup` steps, then cosine decay to `min_factor` x lr."""
    warm = _steps("warmup", warmup, iterations, "schedule.warmup=200")
    ramp = LinearLR(optimizer, _factor("start_factor", start_factor, "schedule.start_factor=0.01", low_open=True),
                    1.0, total_iters=warm)
    decay = CosineAnnealingLR(optimizer, T_max=iterations - warm,
                              eta_min=_factor("min_factor", min_factor, "schedule.min_factor=0.0") * _lr(optimizer))
    return SequentialLR(optimizer, [ramp, decay], milestones=[warm])


def wsd(optimizer: Optimizer, iterations: int, warmup: float = 0.05, decay: float = 0.2, start_factor: float = 0.01,
        end_factor: float = 0.0) -> LRScheduler:
    """Warmup-stable-decay: linear warm-up, the lr held, then a linear decay to `end_factor` x lr over the last `decay` steps."""
    warm = _steps("warmup", warmup, iterations, "schedule.warmup=200")
    cool = _steps("decay", decay, iterations, "schedule.decay=0.2")
    if warm + cool >= iterations:
        raise OptbenchError(f"schedule.warmup ({warm} steps) and schedule.decay ({cool} steps) leave no stable phase "
                            f"in iterations={iterations}: shorten one of them.")
    phases = [
        LinearLR(optimizer, _factor("start_factor", start_factor, "schedule.start_factor=0.01", low_open=True), 1.0,
                 total_iters=warm),
        ConstantLR(optimizer, factor=1.0, total_iters=iterations - warm - cool),
        LinearLR(optimizer, 1.0, _factor("end_factor", end_factor, "schedule.end_factor=0.0"), total_iters=cool),
    ]
    return SequentialLR(optimizer, phases, milestones=[warm, iterations - cool])


def linear(optimizer: Optimizer, iterations: int, end_factor: float = 0.0) -> LRScheduler:
    """Linear decay from the lr to `end_factor` x lr over the run (torch's LinearLR)."""
    return LinearLR(optimizer, 1.0, _factor("end_factor", end_factor, "schedule.end_factor=0.0"), total_iters=iterations)


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
