"""Stochastic gradient descent: plain, with heavy-ball momentum, and with Nesterov momentum."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optbench.optim.base import ScratchOptimizer, with_l2


class SGD(ScratchOptimizer):
    """θ ← θ − η g."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Step against the gradient."""
        param.add_(with_l2(grad, param, group["weight_decay"]), alpha=-group["lr"])


class Momentum(ScratchOptimizer):
    """v ← μ v + (1 − d) g (v₁ = g);  θ ← θ − η v."""

    def __init__(
        self, params, lr: float = 1e-3, momentum: float = 0.9, dampening: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)

    def velocity(self, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
        """Update and return the velocity (the first step starts it at the gradient, as torch does)."""
        if "velocity" not in state:
            state["velocity"] = torch.clone(grad).detach()
        else:
            state["velocity"].mul_(group["momentum"]).add_(grad, alpha=1 - group["dampening"])
        return state["velocity"]

    def direction(self, grad: Tensor, velocity: Tensor, momentum: float) -> Tensor:
        """The step direction: the velocity itself."""
        return velocity

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Step along the velocity."""
        grad = with_l2(grad, param, group["weight_decay"])
        velocity = self.velocity(grad, state, group)
        param.add_(self.direction(grad, velocity, group["momentum"]), alpha=-group["lr"])


class Nesterov(Momentum):
    """v ← μ v + (1 − d) g;  θ ← θ − η (g + μ v): the look-ahead form used by torch (Sutskever et al.)."""

    def direction(self, grad: Tensor, velocity: Tensor, momentum: float) -> Tensor:
        """Gradient plus the momentum-scaled new velocity."""
        return grad.add(velocity, alpha=momentum)
