"""Lookahead (Zhang et al., 2019): k fast steps of any optimizer, then pull slow weights toward them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


class Lookahead(Optimizer):
    """Wrap `base`: every k steps, φ ← φ + α(θ − φ) and θ ← φ (slow weights φ, fast weights θ).

    It is an `Optimizer` (so torch's lr schedulers accept it) whose `param_groups` and `state` are
    the base optimizer's: a schedule that sets the lr sets the base's lr. `Optimizer.__init__` is
    deliberately not called, as it would copy the parameter groups.
    """

    def __init__(self, base: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"Invalid Lookahead k: {k!r} (a whole number of steps >= 1)")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Invalid Lookahead alpha: {alpha!r} (in (0, 1])")
        self.base, self.k, self.alpha = base, k, alpha
        self.fast_steps = 0
        self.slow = [[p.detach().clone() for p in group["params"]] for group in base.param_groups]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The base optimizer's parameter groups (learning rates live there)."""
        return self.base.param_groups

    @property
    def state(self) -> dict:
        """The base optimizer's per-parameter state."""
        return self.base.state

    @property
    def defaults(self) -> dict[str, Any]:
        """The base optimizer's defaults, plus k and alpha."""
        return {**self.base.defaults, "k": self.k, "alpha": self.alpha}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (delegated to the base optimizer)."""
        self.base.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One fast step; every k-th also synchronises slow and fast weights."""
        loss = self.base.step(closure)
        self.fast_steps += 1
        if self.fast_steps % self.k == 0:
            for group, slow_weights in zip(self.base.param_groups, self.slow):
                for fast, slow in zip(group["params"], slow_weights):
                    slow.add_(fast - slow, alpha=self.alpha)
                    fast.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state plus the slow weights and the step counter."""
        return {
            "base": self.base.state_dict(),
            "slow": [[w.clone() for w in ws] for ws in self.slow],
            "fast_steps": self.fast_steps,
            "k": self.k,
            "alpha": self.alpha,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (slow weights copied into this optimizer's tensors)."""
        self.base.load_state_dict(state["base"])
        for mine, saved in zip(self.slow, state["slow"]):
            for slow, weights in zip(mine, saved):
                slow.copy_(weights)
        self.fast_steps, self.k, self.alpha = state["fast_steps"], state["k"], state["alpha"]

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, base={self.base!r})"
