"""The Adam family: Adam, AdamW, Adamax, NAdam, RAdam."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optbench.optim.base import ScratchOptimizer, with_l2


class Adam(ScratchOptimizer):
    """m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − η m̂ / (√v̂ + ε)  (m̂, v̂ bias-corrected)."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """First and second moment estimates."""
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def decay(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        """Weight decay as L2 regularisation in the gradient (Adam's way)."""
        return with_l2(grad, param, group["weight_decay"])

    def moments(self, grad: Tensor, state: dict[str, Any], beta1: float, beta2: float) -> tuple[Tensor, Tensor]:
        """Update both moving averages; lerp_ is the EMA m + (1−β₁)(g − m) in one op."""
        exp_avg = state["exp_avg"].lerp_(grad, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        return exp_avg, exp_avg_sq

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Bias-corrected first moment over the root of the bias-corrected second moment."""
        beta1, beta2 = group["betas"]
        t = state["step"]
        exp_avg, exp_avg_sq = self.moments(self.decay(param, grad, group), state, beta1, beta2)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
        param.addcdiv_(exp_avg, denom, value=-group["lr"] / (1 - beta1**t))


class AdamTF(Adam):
    """TensorFlow 1.x's `tf.train.AdamOptimizer` (DeepOBS's baselines): θ ← θ − η_t m / (√v + ε̂) with
    η_t = η √(1−β₂ᵗ) / (1−β₁ᵗ).

    ε̂ is added to the root of the *uncorrected* v, so it equals torch's ε scaled by √(1−β₂ᵗ): with
    β₂ = 0.999, TF's 1e-8 acts as torch's 3.2e-7 at the first step, 1e-8 only once t is in the thousands.
    """

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """The bias corrections folded into the step size, epsilon added outside them (TF's order)."""
        beta1, beta2 = group["betas"]
        t = state["step"]
        exp_avg, exp_avg_sq = self.moments(self.decay(param, grad, group), state, beta1, beta2)
        step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay: θ ← θ(1 − ηλ) before the Adam step (Loshchilov & Hutter)."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def decay(self, param: Tensor, grad: Tensor, group: dict[str, Any]) -> Tensor:
        """Shrink the weights directly; the gradient is left as it is."""
        param.mul_(1 - group["lr"] * group["weight_decay"])
        return grad


class Adamax(Adam):
    """Adam with the infinity norm: u ← max(β₂u, |g| + ε);  θ ← θ − η/(1−β₁ᵗ) · m / u."""

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """First moment and the exponentially weighted infinity norm."""
        return {"exp_avg": torch.zeros_like(param), "exp_inf": torch.zeros_like(param)}

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Divide the bias-corrected first moment by the running max of |g|."""
        beta1, beta2 = group["betas"]
        grad = self.decay(param, grad, group)
        exp_avg = state["exp_avg"].lerp_(grad, 1 - beta1)
        exp_inf = torch.maximum(state["exp_inf"].mul_(beta2), grad.abs().add_(group["eps"]), out=state["exp_inf"])
        param.addcdiv_(exp_avg, exp_inf, value=-group["lr"] / (1 - beta1 ** state["step"]))


class NAdam(Adam):
    """Adam with Nesterov momentum and the momentum schedule μₜ = β₁(1 − ½·0.96^(t·ψ)) (Dozat)."""

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for group in self.param_groups:
            group.setdefault("momentum_decay", momentum_decay)

    def init_state(self, param: Tensor) -> dict[str, Any]:
        """Moments plus the running product of the momentum schedule."""
        return {**super().init_state(param), "mu_product": 1.0}

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Mix the current gradient (weight 1−μₜ) and the look-ahead moment (weight μₜ₊₁)."""
        beta1, beta2 = group["betas"]
        t, psi, lr = state["step"], group["momentum_decay"], group["lr"]
        grad = self.decay(param, grad, group)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] *= mu
        exp_avg, exp_avg_sq = self.moments(grad, state, beta1, beta2)
        denom = exp_avg_sq.div(1 - beta2**t).sqrt().add_(group["eps"])
        param.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - state["mu_product"]))
        param.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - state["mu_product"] * mu_next))


class RAdam(Adam):
    """Rectified Adam: SGD with momentum while the variance estimate is unreliable (ρₜ ≤ 5) (Liu et al.)."""

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Adam's step scaled by the variance rectification rₜ, or a momentum step early on."""
        beta1, beta2 = group["betas"]
        t, lr = state["step"], group["lr"]
        exp_avg, exp_avg_sq = self.moments(self.decay(param, grad, group), state, beta1, beta2)
        bias_correction2 = 1 - beta2**t
        corrected_avg = exp_avg / (1 - beta1**t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive_lr = bias_correction2**0.5 / exp_avg_sq.sqrt().add_(group["eps"])
            param.add_(corrected_avg * lr * adaptive_lr * rect, alpha=-1.0)
        else:
            param.add_(corrected_avg * lr, alpha=-1.0)
