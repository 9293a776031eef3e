"""Optimizer steps for the members of a wide model.

The `Batched*` blocks (SGD, Adam/AdamW, RMSprop, Adagrad, Adamax) step a contiguous block of members
at once, over their rows of the flat [K, P] parameter tensor, with torch's own single-tensor
arithmetic (element-wise, so each element gets the bits of its own run). A hyper-parameter all
members share stays a Python number (torch's exact op); one that differs becomes a [n, 1] float32
tensor holding the float32 of the same double expression torch computes, used through the fused op
that rounds alike (`add(y, alpha=a)` -> `addcmul(y, a)`, `addcdiv(y, z, value=a)` ->
`addcdiv(y * a, z)`). `MemberSteps` is the general path: each member's own optimizer steps over
views of its row.

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
    variants = ("maximize", "foreach", "fused", "differentiable", "amsgrad", "capturable", "centered")
    return isinstance(group["lr"], float) and not any(group.get(key) for key in variants)


def batch_signature(optimizer: Optimizer) -> tuple | None:
    """Members whose optimizers share a signature can be stepped as one block; None: step alone."""
    if len(optimizer.param_groups) != 1 or not _plain(group := optimizer.param_groups[0]):
        return None
    if type(optimizer) is torch.optim.SGD:
        return ("sgd", group["momentum"] != 0, group["nesterov"], group["weight_decay"] != 0)
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        return ("adam", group["decoupled_weight_decay"], group["weight_decay"] != 0)
    if type(optimizer) is torch.optim.RMSprop:
        return ("rmsprop", group["momentum"] > 0, group["weight_decay"] != 0)
    if type(optimizer) is torch.optim.Adagrad:
        return ("adagrad", group["weight_decay"] != 0)
    if type(optimizer) is torch.optim.Adamax:
        return ("adamax", group["weight_decay"] != 0)
    return None


class Hyper:
    """Per-member hyper-parameters, read from the members' param_groups at each step.

    Values that differ between members reach the device through one persistent tensor, refilled each
    step (on the CPU in place; on a GPU by an asynchronous copy from pinned memory, queued behind the
    last step's kernels that read it): no per-step device tensor, and no host sync.
    """

    def __init__(self, groups: Sequence[dict[str, Any]], like: Tensor) -> None:
        self.groups = groups
        self.like = like
        self._rows: Tensor | None = None  # [values, members] on the device, grown to the most values asked at once

    def __call__(self, expressions: dict[str, Callable[[dict[str, Any]], float]]) -> dict[str, Value]:
        """Each expression of each member's group: a float when all members agree (a config's
        `weight_decay: 0` is an int; torch's scalar ops round it alike), else a [n] tensor on the
        device holding the float32 of each member's double value, as torch rounds it."""
        values = {name: [expression(group) for group in self.groups] for name, expression in expressions.items()}
        differ = [name for name, column in values.items() if any(v != column[0] for v in column)]
        result: dict[str, Value] = {name: float(column[0]) for name, column in values.items() if name not in differ}
        if differ:
            result.update(zip(differ, self._fill([values[name] for name in differ])))
        return result

    def _fill(self, rows: list[list[float]]) -> Tensor:
        """`rows` in the persistent device tensor (float32, rounded to nearest as torch.tensor does)."""
        if self._rows is None or len(self._rows) < len(rows):
            self._rows = torch.empty(len(rows), len(self.groups), dtype=self.like.dtype, device=self.like.device)
        target = self._rows[: len(rows)]
        if target.device.type == "cpu":
            target.numpy()[:] = rows
        else:
            staging = torch.empty(target.shape, dtype=target.dtype, pin_memory=True)
            staging.numpy()[:] = rows
            target.copy_(staging, non_blocking=True)  # the pinned-memory cache keeps `staging` until it has run
        return target


def per_member(value: Value, like: Tensor) -> Value:
    """A hyper-parameter shaped to broadcast over a stacked tensor like `like` ([n] -> [n, 1, ...])."""
    return value if isinstance(value, float) else value.view(-1, *[1] * (like.dim() - 1))


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


class Block:
    """A contiguous block of members whose optimizers share a batch signature, stepped as one."""

    def __init__(
        self, optimizers: Sequence[Optimizer], params: Sequence[Tensor], grads: Sequence[Tensor], block: slice
    ) -> None:
        self.params = [p[block] for p in params]
        self.grads = [g[block] for g in grads]
        self.hyper = Hyper([opt.param_groups[0] for opt in optimizers], self.params[0])
        self.group = self.hyper.groups[0]  # the settings that choose the code path are equal across the block
        self.steps = 0
        self.init_state()

    def values(self, **expressions: Callable[[dict[str, Any]], float]) -> dict[str, Value]:
        """This step's hyper-parameters, each a float or one value per member."""
        return self.hyper(expressions)

    @torch.no_grad()
    def step(self) -> None:
        """One step of every member in the block, from the gradients of the last backward."""
        self.steps += 1
        self.start_step()
        for i, (param, grad) in enumerate(zip(self.params, self.grads)):
            self.update(i, param, grad)

    def init_state(self) -> None:
        """Allocate the optimizer's per-parameter state."""
        raise NotImplementedError

    def start_step(self) -> None:
        """Read this step's hyper-parameters into `self.v` (before the updates)."""
        raise NotImplementedError

    def update(self, i: int, param: Tensor, grad: Tensor) -> None:
        """The algorithm's step for the i-th stacked parameter."""
        raise NotImplementedError


class BatchedSGD(Block):
    """torch.optim.SGD's single-tensor step (momentum, dampening, Nesterov, weight decay) for a block of members."""

    def init_state(self) -> None:
        """No momentum buffers until the first step (torch clones the first gradient)."""
        self.buffers: list[Tensor | None] = [None] * len(self.params)  # momentum, from the first step

    def start_step(self) -> None:
        """This step's lr, momentum, dampening and weight decay."""
        self.v = self.values(
            lr=lambda g: -g["lr"],
            momentum=lambda g: g["momentum"],
            damping=lambda g: 1 - g["dampening"],
            weight_decay=lambda g: g["weight_decay"],
        )

    def update(self, i: int, param: Tensor, grad: Tensor) -> None:
        """SGD's update of one stacked parameter."""
        v = {name: per_member(value, param) for name, value in self.v.items()}
        if self.group["weight_decay"] != 0:
            grad = add_scaled(grad, param, v["weight_decay"])
        if self.group["momentum"] != 0:
            buf = self.buffers[i]
            if buf is None:
                buf = self.buffers[i] = grad.detach().clone()
            else:
                add_scaled_(buf.mul_(v["momentum"]), grad, v["damping"])
            grad = add_scaled(grad, buf, v["momentum"]) if self.group["nesterov"] else buf
        add_scaled_(param, grad, v["lr"])


class BatchedAdam(Block):
    """torch.optim.Adam / AdamW's single-tensor step (no amsgrad) for a block of members."""

    def init_state(self) -> None:
        """Zero first and second moments."""
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]

    def start_step(self) -> None:
        """This step's coefficients, computed from each member's settings as torch computes them."""
        t = float(self.steps)  # torch keeps the step count as a float32 tensor and reads it with .item()
        self.v = self.values(
            decay=lambda g: 1 - g["lr"] * g["weight_decay"],
            weight_decay=lambda g: g["weight_decay"],
            beta1=lambda g: 1 - g["betas"][0],
            beta2=lambda g: g["betas"][1],
            one_minus_beta2=lambda g: 1 - g["betas"][1],
            correction2=lambda g: (1 - g["betas"][1] ** t) ** 0.5,
            eps=lambda g: g["eps"],
            step_size=lambda g: -(g["lr"] / (1 - g["betas"][0] ** t)),
        )

    def update(self, i: int, param: Tensor, grad: Tensor) -> None:
        """Adam's update of one stacked parameter."""
        v = {name: per_member(value, param) for name, value in self.v.items()}
        if self.group["weight_decay"] != 0:
            if self.group["decoupled_weight_decay"]:
                param.mul_(v["decay"])
            else:
                grad = add_scaled(grad, param, v["weight_decay"])
        exp_avg, exp_avg_sq = self.exp_avgs[i], self.exp_avg_sqs[i]
        exp_avg.lerp_(grad, v["beta1"])
        addcmul_(exp_avg_sq.mul_(v["beta2"]), grad, grad, v["one_minus_beta2"])
        denom = (exp_avg_sq.sqrt() / v["correction2"]).add_(v["eps"])
        addcdiv_(param, exp_avg, denom, v["step_size"])


class BatchedRMSprop(Block):
    """torch.optim.RMSprop's single-tensor step (not centered) for a block of members."""

    def init_state(self) -> None:
        """Zero square averages (and momentum buffers)."""
        self.square_avgs = [torch.zeros_like(p) for p in self.params]
        self.buffers = [torch.zeros_like(p) for p in self.params] if self.group["momentum"] > 0 else []

    def start_step(self) -> None:
        """This step's lr, alpha, eps, momentum and weight decay."""
        self.v = self.values(
            lr=lambda g: -g["lr"],
            alpha=lambda g: g["alpha"],
            one_minus_alpha=lambda g: 1 - g["alpha"],
            eps=lambda g: g["eps"],
            momentum=lambda g: g["momentum"],
            weight_decay=lambda g: g["weight_decay"],
        )

    def update(self, i: int, param: Tensor, grad: Tensor) -> None:
        """RMSprop's update of one stacked parameter."""
        v = {name: per_member(value, param) for name, value in self.v.items()}
        if self.group["weight_decay"] != 0:
            grad = add_scaled(grad, param, v["weight_decay"])
        addcmul_(self.square_avgs[i].mul_(v["alpha"]), grad, grad, v["one_minus_alpha"])
        avg = self.square_avgs[i].sqrt().add_(v["eps"])
        if self.buffers:
            add_scaled_(param, self.buffers[i].mul_(v["momentum"]).addcdiv_(grad, avg), v["lr"])
        else:
            addcdiv_(param, grad, avg, v["lr"])


class BatchedAdagrad(Block):
    """torch.optim.Adagrad's single-tensor step (dense gradients) for a block of members."""

    def init_state(self) -> None:
        """Sums starting at each member's initial accumulator value."""
        initial = self.values(initial=lambda g: float(g["initial_accumulator_value"]))["initial"]
        self.sums = [torch.zeros_like(p).add_(per_member(initial, p)) for p in self.params]

    def start_step(self) -> None:
        """This step's decayed lr, eps and weight decay."""
        t = float(self.steps)
        self.v = self.values(
            lr=lambda g: -(g["lr"] / (1 + (t - 1) * g["lr_decay"])),
            eps=lambda g: g["eps"],
            weight_decay=lambda g: g["weight_decay"],
        )

    def update(self, i: int, param: Tensor, grad: Tensor) -> None:
        """Adagrad's update of one stacked parameter."""
        v = {name: per_member(value, param) for name, value in self.v.items()}
        if self.group["weight_decay"] != 0:
            grad = add_scaled(grad, param, v["weight_decay"])
        self.sums[i].addcmul_(grad, grad, value=1)
        addcdiv_(param, grad, self.sums[i].sqrt().add_(v["eps"]), v["lr"])


class BatchedAdamax(Block):
    """torch.optim.Adamax's single-tensor step for a block of members."""

    def init_state(self) -> None:
        """Zero first moments and infinity norms."""
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_infs = [torch.zeros_like(p) for p in self.params]

    def start_step(self) -> None:
        """This step's coefficients, computed from each member's settings as torch computes them."""
        t = float(self.steps)
        self.v = self.values(
            weight_decay=lambda g: g["weight_decay"],
            beta1=lambda g: 1 - g["betas"][0],
            beta2=lambda g: g["betas"][1],
            eps=lambda g: g["eps"],
            step_size=lambda g: -(g["lr"] / (1 - g["betas"][0] ** t)),
        )

    def update(self, i: int, param: Tensor, grad: Tensor) -> None:
        """Adamax's update of one stacked parameter."""
        v = {name: per_member(value, param) for name, value in self.v.items()}
        if self.group["weight_decay"] != 0:
            grad = add_scaled(grad, param, v["weight_decay"])
        exp_avg, exp_inf = self.exp_avgs[i], self.exp_infs[i]
        exp_avg.lerp_(grad, v["beta1"])
        torch.maximum(exp_inf.mul_(v["beta2"]), grad.abs().add_(v["eps"]), out=exp_inf)
        addcdiv_(param, exp_avg, exp_inf, v["step_size"])


class MemberSteps:
    """Any optimizer: each member's own optimizer steps its parameters, views of the stacked tensors (whose
    `.grad` are views of the stacked gradients: `WideMLP`)."""

    def __init__(self, optimizers: Sequence[Optimizer]) -> None:
        self.optimizers = optimizers

    def step(self) -> None:
        """Step each member's optimizer on its own gradients."""
        for optimizer in self.optimizers:
            optimizer.step()


BATCHED = {
    "sgd": BatchedSGD,
    "adam": BatchedAdam,
    "rmsprop": BatchedRMSprop,
    "adagrad": BatchedAdagrad,
    "adamax": BatchedAdamax,
}
