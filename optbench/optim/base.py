"""The shared frame of the from-scratch optimizers: `step()` hands each gradient to `update()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


class ScratchOptimizer(Optimizer):
    """A torch Optimizer whose subclasses only write the textbook update of one parameter."""

    def __init__(self, params, **defaults: Any) -> None:
        if defaults.get("lr", 0.0) < 0.0:
            raise ValueError(f"Invalid learning rate: {defaults['lr']}")
        super().__init__(params, defaults)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """Per-parameter state before the first step (moments, accumulators)."""
        return {}

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Apply one step of the algorithm to `param` in place (state['step'] is already t)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One optimisation step over every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state.update(step=0, **self.init_state(param))
                state["step"] += 1
                self.update(param, param.grad, state, group)
        return loss


def with_l2(grad: Tensor, param: Tensor, weight_decay: float) -> Tensor:
    """g + λθ: L2 regularisation folded into the gradient (a new tensor; .grad is left alone)."""
    return grad.add(param, alpha=weight_decay) if weight_decay else grad
