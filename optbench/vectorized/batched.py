"""Optimizer steps for the members of a wide model.

`BatchedSGD` and `BatchedAdam` step a contiguous block of members at once with torch's own
single-tensor arithmetic: a hyper-parameter all members share stays a Python number (torch's exact
op); one that differs becomes a [n, 1, ...] float32 tensor holding the float32 of the same double
expression torch computes, used through the fused op that rounds alike (`add(y, alpha=a)` ->
`addcmul(y, a)`, `addcdiv(y, z, value=a)` -> `addcdiv(y * a, z)`). `MemberSteps` is the general
path: each member's own optimizer steps over views of the stacked tensors.

Each member keeps its own torch optimizer object either way: its `param_groups` hold the member's
hyper-parameters, so lr schedules and the recorded lr work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

Value = float | Tensor  # a hyper-parameter: one number for all members, or one per member

def _plain(group: dict[str, Any]) -> bool:
    """True when torch would take the single-tensor code path copied here (a float lr, no variant flags)."""
    variants = ("maximize", "foreach", "fused", "differentiable", "amsgrad", "capturable")
    return isinstance(group["lr"], float) and not any(group.get(key) for key in variants)


def batch_signature(optimizer: Optimizer) -> tuple | None:
    """Members whose optimizers share a signature can be stepped as one block; None: step alone."""
    if len(optimizer.param_groups) != 1 or not _plain(group := optimizer.param_groups[0]):
        return None
    if type(optimizer) is torch.optim.SGD:
        return ("sgd", group["momentum"] != 0, group["nesterov"], group["weight_decay"] != 0)
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        return ("adam", group["decoupled_weight_decay"], group["weight_decay"] != 0)
    return None


class Hyper:
    """Per-member hyper-parameters read from the members' param_groups at each step."""

    def __init__(self, groups: Sequence[dict[str, Any]]) -> None:
        self.groups = groups

    def __call__(self, expression: Callable[[dict[str, Any]], float], like: Tensor) -> Value:
        """`expression` of each member's group: a float when all agree, else a tensor shaped to broadcast over `like`."""
        values = [expression(group) for group in self.groups]
        if all(v == values[0] for v in values):
            return values[0]
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *[1] * (like.dim() - 1))


def add_scaled(x: Tensor, y: Tensor, a: Value) -> Tensor:
    """x + a·y, rounded as torch's `x.add(y, alpha=a)`."""
    return x.add(y, alpha=a) if isinstance(a, float) else torch.addcmul(x, y, a)


def add_scaled_(x: Tensor, y: Tensor, a: Value) -> Tensor:
    """x += a·y in place, rounded as torch's `x.add_(y, alpha=a)`."""
    return x.add_(y, alpha=a) if isinstance(a, float) else x.addcmul_(y, a)


def addcmul_(x: Tensor, y: Tensor, z: Tensor, a: Value) -> Tensor:
    """x += a·y·z in place, rounded as torch's `x.addcmul_(y, z, value=a)`."""
    return x.addcmul_(y, z, value=a) if isinstance(a, float) else x.addcmul_(y, z * a)


def addcdiv_(x: Tensor, y: Tensor, z: Tensor, a: Value) -> Tensor:
    """x += a·y/z in place, rounded as torch's `x.addcdiv_(y, z, value=a)`."""
    return x.addcdiv_(y, z, value=a) if isinstance(a, float) else x.addcdiv_(y * a, z)


class BatchedSGD:
    """torch.optim.SGD's single-tensor step (momentum, dampening, Nesterov, weight decay) for a block of members."""

    def __init__(self, optimizers: Sequence[Optimizer], params: Sequence[Tensor], block: slice) -> None:
        self.hyper = Hyper([opt.param_groups[0] for opt in optimizers])
        self.params = [p.detach()[block] for p in params]
        self.block = block
        self.buffers: list[Tensor | None] = [None] * len(self.params)  # momentum, from the first step

    @torch.no_grad()
    def step(self, gradients: Sequence[Tensor]) -> None:
        """One step of every member in the block."""
        group, h = self.hyper.groups[0], self.hyper
        for i, (param, grad) in enumerate(zip(self.params, (g[self.block] for g in gradients))):
            if group["weight_decay"] != 0:
                grad = add_scaled(grad, param, h(lambda g: g["weight_decay"], param))
            if group["momentum"] != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = grad.detach().clone()
                else:
                    add_scaled_(buf.mul_(h(lambda g: g["momentum"], param)), grad, h(lambda g: 1 - g["dampening"], param))
                grad = add_scaled(grad, buf, h(lambda g: g["momentum"], param)) if group["nesterov"] else buf
            add_scaled_(param, grad, h(lambda g: -g["lr"], param))


class BatchedAdam:
    """torch.optim.Adam / AdamW's single-tensor step (no amsgrad) for a block of members."""

    def __init__(self, optimizers: Sequence[Optimizer], params: Sequence[Tensor], block: slice) -> None:
        self.hyper = Hyper([opt.param_groups[0] for opt in optimizers])
        self.params = [p.detach()[block] for p in params]
        self.block = block
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    @torch.no_grad()
    def step(self, gradients: Sequence[Tensor]) -> None:
        """One step of every member in the block."""
        self.steps += 1
        t = float(self.steps)  # torch keeps the step count as a float32 tensor and reads it with .item()
        group, h = self.hyper.groups[0], self.hyper
        for param, grad, exp_avg, exp_avg_sq in zip(self.params, (g[self.block] for g in gradients),
                                                    self.exp_avgs, self.exp_avg_sqs):
            if group["weight_decay"] != 0:
                if group["decoupled_weight_decay"]:
                    param.mul_(h(lambda g: 1 - g["lr"] * g["weight_decay"], param))
                else:
                    grad = add_scaled(grad, param, h(lambda g: g["weight_decay"], param))
            exp_avg.lerp_(grad, h(lambda g: 1 - g["betas"][0], param))
            addcmul_(exp_avg_sq.mul_(h(lambda g: g["betas"][1], param)), grad, grad,
                     h(lambda g: 1 - g["betas"][1], param))
            denom = (exp_avg_sq.sqrt() / h(lambda g: (1 - g["betas"][1] ** t) ** 0.5, param)).add_(
                h(lambda g: g["eps"], param))
            addcdiv_(param, exp_avg, denom, h(lambda g: -(g["lr"] / (1 - g["betas"][0] ** t)), param))


class MemberSteps:
    """Any optimizer: each member's own optimizer steps its parameters, views of the stacked tensors."""

    def __init__(self, optimizers: Sequence[Optimizer], member_params: Sequence[Sequence[Tensor]],
                 members: Sequence[int]) -> None:
        self.optimizers = optimizers
        self.member_params = member_params
        self.members = members

    def step(self, gradients: Sequence[Tensor]) -> None:
        """Hand each member its slice of the stacked gradients and step its optimizer."""
        for k, optimizer, params in zip(self.members, self.optimizers, self.member_params):
            for param, grad in zip(params, gradients):
                param.grad = grad[k]
            optimizer.step()


BATCHED = {"sgd": BatchedSGD, "adam": BatchedAdam}
