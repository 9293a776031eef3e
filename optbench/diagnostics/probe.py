"""A run's diagnostics (`diagnostics.every`): at the steps it measures, what the step did and the curvature it
met, one row of diagnostics.csv each.

A measured step k needs the weights before step k-1 and before step k (the update of step k-1 gives the cosine
between successive updates), so the probe copies the parameters before those two steps only; at every other step
it does nothing. Measuring draws nothing from torch's global generator (Lanczos has its own) and leaves `.grad`
untouched, so a run's training numbers are the same with diagnostics on or off, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from optbench.diagnostics.hessian import hessian_products, preconditioned, top_eigenvalue
from optbench.diagnostics.preconditioner import stability
from optbench.rundir.writer import DIAGNOSTICS_COLUMNS


@dataclass(frozen=True)
class Settings:
    """The `diagnostics` node: when to measure, and how the sharpness is taken."""

    every: int | str | None = None  # N, "eval", or None (off)
    sharpness: bool = True
    batch_size: int | None = 1000
    lanczos_steps: int = 20
    tolerance: float = 1e-3
    preconditioned: bool | None = None  # None: where readable; True: insist; False: never

    @classmethod
    def of(cls, node: DictConfig | None) -> Settings:
        """The settings of a job config's `diagnostics` node (checked by `optbench.config.validation`)."""
        return cls(**node) if node is not None else cls()

    @property
    def on(self) -> bool:
        """True when the run measures anything."""
        return self.every is not None


def parameter_columns(names: list[str]) -> list[str]:
    """The per-parameter columns of diagnostics.csv for parameters `names` (model.named_parameters order)."""
    return [f"update_ratio/{name}" for name in names] + [f"grad_norm/{name}" for name in names]


def judged_sharpness(row: dict[str, float]) -> tuple[str, float]:
    """The sharpness a measured step is held against its stability threshold by, named: the preconditioned one where
    the optimizer's preconditioner was read, else the plain one."""
    if not math.isnan(row["preconditioned_sharpness"]):
        return "preconditioned sharpness", row["preconditioned_sharpness"]
    return "sharpness", row["sharpness"]


@dataclass
class Crossing:
    """What the diagnostics saw of the stability threshold: the first measured step above it, and the last row."""

    first_above: int | None = None
    last: dict[str, float] | None = None


class Probe:
    """Measures the steps `due(iteration)` says, writing each row with `write(iteration, row)`."""

    def __init__(
        self,
        settings: Settings,
        model: nn.Module,
        due: Callable[[int], bool],
        sharpness_loss: Callable[[nn.Module], torch.Tensor] | None,
        write: Callable[[int, dict[str, float]], None] = lambda iteration, row: None,
    ) -> None:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self.parameters = [p for _, p in named]
        self.settings, self.due, self.write, self.sharpness_loss = settings, due, write, sharpness_loss
        self.snapshots: dict[int, list[torch.Tensor]] = {}  # iteration -> the weights before that step
        self.crossing = Crossing()

    @property
    def columns(self) -> list[str]:
        """diagnostics.csv's columns for this model."""
        return [*DIAGNOSTICS_COLUMNS, *parameter_columns(self.names)]

    def before(self, iteration: int) -> None:
        """Before step `iteration`: keep the weights if this step or the next is measured."""
        if self.due(iteration) or self.due(iteration + 1):
            self.snapshots[iteration] = [p.detach().clone() for p in self.parameters]
        self.snapshots.pop(iteration - 2, None)

    def after(self, iteration: int, model: nn.Module, optimizer: torch.optim.Optimizer, lr: float) -> None:
        """After a due step `iteration` (before the schedule moves the lr): measure it and write its row."""
        row = self.step_norms(iteration)
        row["lr"] = lr
        row.update(self.curvature(model, optimizer))
        if self.crossing.first_above is None and judged_sharpness(row)[1] > row["stability_threshold"]:
            self.crossing.first_above = iteration
        self.crossing.last = {"iteration": iteration, **row}
        self.write(iteration, row)

    @torch.no_grad()
    def step_norms(self, iteration: int) -> dict[str, float]:
        """Gradient and update norms, overall and per parameter, and the cosine of this update with the last."""
        before = self.snapshots[iteration]
        updates = [p.detach() - b for p, b in zip(self.parameters, before)]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters]
        update_norms = torch.stack([u.norm() for u in updates]).double()
        grad_norms = torch.stack([g.norm() for g in grads]).double()
        weight_norms = torch.stack([b.norm() for b in before]).double()
        ratios = update_norms / weight_norms  # a zero weight (a bias at init) gives inf or nan: left as is
        cosine = math.nan
        if (previous := self.snapshots.get(iteration - 1)) is not None:
            last = [b - p for b, p in zip(before, previous)]
            dot = sum(torch.dot(u.reshape(-1).double(), v.reshape(-1).double()) for u, v in zip(updates, last))
            norms = update_norms.norm() * torch.stack([v.norm() for v in last]).double().norm()
            cosine = float(dot / norms) if float(norms) > 0 else math.nan
        row = {
            "grad_norm": float(grad_norms.norm()),
            "update_norm": float(update_norms.norm()),
            "update_cosine": cosine,
        }
        row.update(zip(parameter_columns(self.names), [*ratios.tolist(), *grad_norms.tolist()]))
        return row

    def curvature(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """The sharpness, the preconditioned sharpness and the stability threshold at the weights after the step."""
        step = stability(optimizer, self.parameters)
        row = {
            "sharpness": math.nan,
            "preconditioned_sharpness": math.nan,
            "stability_threshold": step.threshold if step is not None else math.nan,
            "hessian_products": 0,
        }
        if not self.settings.sharpness or self.sharpness_loss is None:
            return row
        training = model.training
        model.eval()  # no dropout: the same weights, the same Hessian (and no draw from the global generator)
        try:
            # Attention's fused kernels have no double backward (CPU flash attention, for one): the measurement
            # takes the math kernel, the same function (training keeps whichever kernel torch picks).
            with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
                loss = self.sharpness_loss(model)
                if not torch.isfinite(loss):  # a diverging run: the stop comes at the next flush; no curvature here
                    return row
                product = hessian_products(loss, self.parameters)
                dimension = sum(p.numel() for p in self.parameters)
                like = self.parameters[0].detach()
                options: dict[str, Any] = {
                    "steps": self.settings.lanczos_steps,
                    "tolerance": self.settings.tolerance,
                    "like": like,
                }
                top = top_eigenvalue(product, dimension, **options)
                row.update(sharpness=top.value, hessian_products=top.products)
                if step is not None and step.diagonal is not None and self.settings.preconditioned is not False:
                    adapted = top_eigenvalue(preconditioned(product, step.diagonal.to(like)), dimension, **options)
                    row.update(preconditioned_sharpness=adapted.value)
                    row["hessian_products"] += adapted.products
        finally:
            model.train(training)
        return row
