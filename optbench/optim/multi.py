"""Several optimizers over disjoint parameters, stepped as one (e.g. Muon on matrices, AdamW on the rest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


class MultiOptimizer(Optimizer):
    """One `Optimizer` over the parameter groups of `optimizers`, in order.

    Like Lookahead, it does not call `Optimizer.__init__` (which would copy the groups): its
    `param_groups` are the parts' own group dicts, so a schedule that sets an lr sets the part's lr.
    """

    def __init__(self, optimizers: list[Optimizer]) -> None:
        if len(optimizers) < 2:
            raise ValueError("MultiOptimizer needs two or more optimizers")
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Every part's parameter groups, the first part's first."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @property
    def state(self) -> dict:
        """A read-only view of every part's per-parameter state."""
        return {param: state for optimizer in self.optimizers for param, state in optimizer.state.items()}

    @property
    def defaults(self) -> dict[str, Any]:
        """The first part's defaults."""
        return self.optimizers[0].defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every part's gradients."""
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Evaluate the closure once (if given), then step every part on those gradients."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def train(self) -> None:
        """Switch parts that have a train mode (schedule-free optimizers) to it."""
        for optimizer in self.optimizers:
            if hasattr(optimizer, "train"):
                optimizer.train()

    def eval(self) -> None:
        """Switch parts that have an eval mode to it."""
        for optimizer in self.optimizers:
            if hasattr(optimizer, "eval"):
                optimizer.eval()

    def state_dict(self) -> dict[str, Any]:
        """Each part's state dict, in order."""
        return {"parts": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        for optimizer, part in zip(self.optimizers, state["parts"], strict=True):
            optimizer.load_state_dict(part)

    def __repr__(self) -> str:
        return "MultiOptimizer(" + ", ".join(type(o).__name__ for o in self.optimizers) + ")"
