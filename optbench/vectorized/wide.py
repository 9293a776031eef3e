"""K copies of a ReLU MLP as one wide model: layer weights stacked [K, out, in], biases [K, out].

`torch.baddbmm` (bias fused into the product, as `addmm` fuses it in `nn.Linear`) gives each member
the bits of its own model's forward pass; `bmm` followed by a bias add does not. The backward pass
is written out so that each product has the orientation `nn.Linear`'s backward uses (autograd's
own `baddbmm` backward forms the weight gradient transposed, which rounds differently).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def widen_reason(model: nn.Module) -> str | None:
    """Why `model` cannot be stacked with copies of itself, or None when it can."""
    if not isinstance(model, nn.Sequential) or not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in model):
        return f"its model ({type(model).__name__}) is not a stack of Linear and ReLU layers"
    if any(isinstance(m, nn.Linear) and m.bias is None for m in model):
        return "its model has a Linear layer without bias"
    return None


class WideLinear(torch.autograd.Function):
    """Linear layers of K members at once: inputs [K, B, in], weight [K, out, in], bias [K, out]."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """Each member's `addmm(bias, x, W.t())`, as one baddbmm."""
        ctx.save_for_backward(inputs, weight)
        return torch.baddbmm(bias.unsqueeze(1), inputs, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """grad·W, gradᵀ·x and the batch sum of grad: `nn.Linear`'s backward products, per member."""
        inputs, weight = ctx.saved_tensors
        grad_inputs = grad.bmm(weight) if ctx.needs_input_grad[0] else None
        return grad_inputs, grad.transpose(1, 2).bmm(inputs), grad.sum(1)


class WideMLP:
    """The members' MLPs stacked: one leaf tensor per parameter, member k's values at index k.

    Each member model keeps its own `nn.Parameter` objects, re-pointed at views of the stacked
    storage, so its optimizer, evaluation and final parameters see the member's slice.
    """

    def __init__(self, models: list[nn.Sequential]) -> None:
        self.modules = list(models[0])
        member_params = [list(model.parameters()) for model in models]
        self.parameters = [torch.stack([params[j].detach() for params in member_params]).requires_grad_()
                           for j in range(len(member_params[0]))]
        for k, params in enumerate(member_params):
            for stacked, param in zip(self.parameters, params):
                param.data = stacked.detach()[k]
        self.member_parameters = member_params

    def __len__(self) -> int:
        return self.parameters[0].shape[0]

    def __call__(self, inputs: Tensor) -> Tensor:
        """Outputs [K, B, classes] of inputs [K, B, features]: member k's model on its own batch."""
        stacked = iter(self.parameters)
        hidden = inputs
        for module in self.modules:
            if isinstance(module, nn.Linear):
                weight, bias = next(stacked), next(stacked)
                hidden = WideLinear.apply(hidden, weight, bias)
            else:
                hidden = torch.relu(hidden)
        return hidden

    def zero_grad(self) -> None:
        """Drop the stacked gradients (each backward allocates them anew, as `set_to_none=True`)."""
        for param in self.parameters:
            param.grad = None

    def gradients(self) -> list[Tensor]:
        """The stacked gradients of the last backward, one per parameter."""
        return [param.grad for param in self.parameters]
