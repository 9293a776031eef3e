"""2-D test functions: an optimizer's path over a landscape you can look at.

Each function is written with torch ops only, so the same code computes the training loss and
the report's contour grid. The point is float64: two parameters cost nothing, and float32 rounding
would blur the last steps near a minimum. Optional gradient noise follows DeepOBS's 2-D problems:
the loss gets `x*xi1 + y*xi2` with xi ~ N(0, noise^2) drawn each step from the seeded generator.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optbench.runtime.device import upload
from optbench.tasks.base import Evaluation, StepLoss, Task

Tensor = torch.Tensor


@dataclass(frozen=True)
class Surface:
    """A 2-D function, its global minima, and the window its contour plot shows."""

    formula: Callable[[Tensor, Tensor], Tensor]
    minima: tuple[tuple[float, float], ...]
    bounds: tuple[tuple[float, float], tuple[float, float]]  # (x range, y range) of the plot
    text: str  # the formula, for figure titles


def rosenbrock(x: Tensor, y: Tensor) -> Tensor:
    """Rosenbrock's banana valley: (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(x: Tensor, y: Tensor) -> Tensor:
    """Beale's function, minimum 0 at (3, 0.5), with steep walls and flat plateaus."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(x: Tensor, y: Tensor) -> Tensor:
    """x^2 - y^2 around the saddle at (0, 0), bounded by y^4/4: minima 0 at (0, ±sqrt(2))."""
    return x**2 - y**2 + y**4 / 4 + 1


def rastrigin(x: Tensor, y: Tensor) -> Tensor:
    """Rastrigin's egg crate: 20 + sum of t^2 - 10 cos(2 pi t), many local minima, global 0 at (0, 0)."""
    return 20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)


FUNCTIONS = {
    "rosenbrock": Surface(rosenbrock, ((1.0, 1.0),), ((-2.0, 2.0), (-1.0, 3.0)), "(1-x)² + 100(y-x²)²"),
    "beale": Surface(beale, ((3.0, 0.5),), ((-4.5, 4.5), (-4.5, 4.5)), "(1.5-x+xy)² + (2.25-x+xy²)² + (2.625-x+xy³)²"),
    "saddle": Surface(
        saddle, ((0.0, math.sqrt(2)), (0.0, -math.sqrt(2))), ((-2.0, 2.0), (-2.0, 2.0)), "x² - y² + y⁴/4 + 1"
    ),
    "rastrigin": Surface(rastrigin, ((0.0, 0.0),), ((-5.12, 5.12), (-5.12, 5.12)), "20 + Σ t² - 10 cos(2πt)"),
}


def surface(name: str) -> Surface:
    """The 2-D function called `name` (one of FUNCTIONS: `task.function` is checked by optbench.config.validation)."""
    return FUNCTIONS[name]


class Point(nn.Module):
    """The model of a 2-D task: just the point (x, y), a float64 parameter."""

    def __init__(self, start: Sequence[float]) -> None:
        super().__init__()
        self.point = nn.Parameter(torch.tensor(list(start), dtype=torch.float64))

    def forward(self) -> Tensor:
        """The current point."""
        return self.point


class Function2D(Task):
    """Minimise a 2-D test function from a fixed starting point; every step's point is recorded."""

    kind = "function"
    trajectory_columns = ("x", "y")

    def __init__(
        self,
        name: str,
        target: Mapping[str, Any],
        function: str,
        start: Sequence[float],
        noise: float = 0.0,
        description: str = "",
        validation: bool = False,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(name, target, description, validation=validation, batch_size=batch_size)
        self.function_name = function
        self.function = surface(function)
        self.start, self.noise = [float(v) for v in start], float(noise)

    @property
    def data_name(self) -> str:
        """The function's name."""
        return self.function_name

    def setup(self, device: torch.device) -> None:
        """Nothing to load: the function is the data."""
        self.device = device

    def build_model(self) -> nn.Module:
        """The point, at the starting point."""
        return Point(self.start)

    def batches(self, batch_size: int) -> Iterator[None]:
        """No data: each step only draws its gradient noise (if any) in `loss`."""
        return itertools.repeat(None)

    def value(self, point: Tensor) -> Tensor:
        """The noise-free function value at `point`."""
        return self.function.formula(point[0], point[1])

    def loss(self, model: nn.Module, batch: None) -> StepLoss:
        """f(x, y), plus x*xi1 + y*xi2 when task.noise > 0."""
        point = model()
        loss = self.value(point)
        if self.noise:
            xi = upload(torch.randn(2, dtype=point.dtype).mul_(self.noise), point.device)  # CPU draws on any device
            loss = loss + point @ xi
        return StepLoss(loss, 1)

    def sharpness_loss(self, size: int | None) -> Callable[[nn.Module], torch.Tensor]:
        """The noise-free function (no data: `size` does not apply), so the sharpness is its exact Hessian's."""
        return lambda model: self.value(model())

    def evaluate(self, model: nn.Module, split: str = "test") -> Evaluation:
        """The noise-free function value at the current point (the test and the validation metric alike)."""
        return Evaluation(self.value(model()).item())

    def position(self, model: nn.Module) -> Tensor:
        """A copy of the current point."""
        return model.point.detach().clone()
