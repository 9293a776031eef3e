"""Per-coordinate adaptive learning rates: Adagrad, RMSprop, Adadelta."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optbench.optim.base import ScratchOptimizer, with_l2


class Adagrad(ScratchOptimizer):
    """G ← G + g²;  θ ← θ − η_t g / (√G + ε),  η_t = η / (1 + (t − 1) decay)."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        if not 0.0 <= lr_decay:  # as torch.optim.Adagrad: a negative decay divides by zero at some step
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """The running sum of squared gradients."""
        return {"sum": torch.full_like(param, self.defaults["initial_accumulator_value"])}

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Scale the step by the root of all squared gradients so far."""
        grad = with_l2(grad, param, group["weight_decay"])
        lr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"].addcmul_(grad, grad, value=1)
        param.addcdiv_(grad, state["sum"].sqrt().add_(group["eps"]), value=-lr)


class RMSprop(ScratchOptimizer):
    """E[g²] ← α E[g²] + (1 − α) g²;  θ ← θ − η g / (√E[g²] + ε)."""

    def __init__(
        self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """The moving average of squared gradients."""
        return {"square_avg": torch.zeros_like(param)}

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Scale the step by the root of the recent squared gradients."""
        grad = with_l2(grad, param, group["weight_decay"])
        square_avg = state["square_avg"].mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
        param.addcdiv_(grad, square_avg.sqrt().add_(group["eps"]), value=-group["lr"])


class Adadelta(ScratchOptimizer):
    """E[g²] ← ρE[g²] + (1−ρ)g²;  Δ = √(E[Δ²]+ε)/√(E[g²]+ε) · g;  E[Δ²] ← ρE[Δ²] + (1−ρ)Δ²;  θ ← θ − η Δ."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """Moving averages of squared gradients and of squared updates."""
        return {"square_avg": torch.zeros_like(param), "acc_delta": torch.zeros_like(param)}

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Step by the ratio of the RMS of past updates to the RMS of gradients."""
        grad = with_l2(grad, param, group["weight_decay"])
        rho, eps = group["rho"], group["eps"]
        square_avg = state["square_avg"].mul_(rho).addcmul_(grad, grad, value=1 - rho)
        delta = state["acc_delta"].add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(grad)
        state["acc_delta"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
        param.add_(delta, alpha=-group["lr"])
