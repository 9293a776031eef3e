"""The step an optimizer takes, read as a preconditioned gradient step: its diagonal preconditioner P (where the
optimizer's state holds it) and the stability threshold its sharpness is compared with.

Gradient descent at step size eta is stable on a quadratic while the sharpness stays below 2/eta (Cohen et al.
2021). With heavy-ball momentum beta the threshold is (2 + 2 beta)/eta, with Nesterov's (2 + 2 beta)/
(eta (1 + 2 beta)) (their appendix on momentum). An adaptive method steps on P^-1 times a momentum of the
gradient; its preconditioned sharpness, the top eigenvalue of P^-1 H, is compared with the threshold of
that momentum: (2 + 2 beta1)/((1 - beta1) eta) for Adam's EMA (Cohen et al. 2022; 38/eta at beta1 = 0.9).
Param groups with another lr fold their lr's ratio into P, so one threshold (the first group's lr) holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Stability:
    """A step's stability threshold, and the diagonal preconditioner it applies to (None: the identity)."""

    threshold: float
    diagonal: torch.Tensor | None = None


def _kind(optimizer: torch.optim.Optimizer) -> str:
    """torch's and optbench's from-scratch optimizers share class names (and state names) on purpose."""
    return type(optimizer).__name__


def sgd_threshold(group: dict) -> float:
    """2/lr, or the heavy-ball / Nesterov threshold with momentum (dampening as torch's default, 0)."""
    lr, beta = float(group["lr"]), float(group.get("momentum", 0.0) or 0.0)
    if group.get("nesterov"):
        return (2 + 2 * beta) / (lr * (1 + 2 * beta))
    return (2 + 2 * beta) / lr


def _adam_diagonal(group: dict, state: dict) -> torch.Tensor:
    beta2, step = group["betas"][1], float(state["step"])
    second = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
    return (second / (1 - beta2**step)).sqrt() + group["eps"]


def _rmsprop_diagonal(group: dict, state: dict) -> torch.Tensor:
    second = state["square_avg"]
    if group.get("centered"):
        second = second - state["grad_avg"] ** 2
    return second.sqrt() + group["eps"]


def _adagrad_diagonal(group: dict, state: dict) -> torch.Tensor:
    decay = 1 + (float(state["step"]) - 1) * group.get("lr_decay", 0.0)
    return (state["sum"].sqrt() + group["eps"]) * decay  # lr / decay as a preconditioner of lr


DIAGONALS = {"Adam": _adam_diagonal, "AdamW": _adam_diagonal, "RMSprop": _rmsprop_diagonal}
DIAGONALS["Adagrad"] = _adagrad_diagonal
PRECONDITIONED = tuple(DIAGONALS)  # the optimizers whose preconditioner a run can read


def stability(optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor]) -> Stability | None:
    """The threshold and (for an adaptive optimizer) the preconditioner of `optimizer`'s next step over
    `parameters` (flattened in their order), or None when neither can be read (Lion, Muon, SOAP, ...)."""
    kind, first = _kind(optimizer), optimizer.param_groups[0]
    if kind == "SGD":
        return Stability(sgd_threshold(first))
    if kind not in DIAGONALS:
        return None
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    pieces = []
    for parameter in parameters:
        group, state = group_of[id(parameter)], optimizer.state.get(parameter, {})
        if "step" not in state or float(state["step"]) == 0:
            return None  # before the first step there is no preconditioner yet
        ratio = float(first["lr"]) / float(group["lr"])
        pieces.append((DIAGONALS[kind](group, state) * ratio).reshape(-1))
    if kind in ("Adam", "AdamW"):
        beta1 = first["betas"][0]
        threshold = (2 + 2 * beta1) / ((1 - beta1) * float(first["lr"]))
    else:  # RMSprop's heavy-ball momentum, Adagrad's none
        threshold = sgd_threshold({"lr": first["lr"], "momentum": first.get("momentum", 0.0)})
    return Stability(threshold, torch.cat(pieces).detach())
