"""K copies of a Linear/ReLU stack as one wide model, with its forward and backward passes written out.

All members' parameters live in one [K, P] tensor (row k: member k's parameters, flattened one after
another), and so do their gradients: an element-wise optimizer then steps a block of members with one
kernel per operation instead of one per layer. Each pass uses the ops a single run's autograd uses,
so every member gets the bits of its own run:
- the forward is `baddbmm` (bias fused into the product, as `addmm` fuses it in `nn.Linear`); `bmm`
  followed by a bias add rounds differently;
- the weight gradient is gradᵀ·x, the orientation of `nn.Linear`'s backward (autograd's own `baddbmm`
  backward forms xᵀ·grad, transposed, which rounds differently), the bias gradient the batch sum of
  grad, the input gradient grad·W; ReLU's is `threshold_backward` of its output, as autograd's;
- the loss gradient is `nll_loss`'s (−1/B at each label) through `_log_softmax_backward_data`.
Writing the backward out (instead of autograd over the stacked tensors) lets the products write
straight into the flat gradient tensor, and skips building a graph each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _views(flat: Tensor, shapes: list[torch.Size]) -> list[Tensor]:
    """Stacked [K, *shape] views of consecutive column ranges of `flat` [K, P], one per shape."""
    views, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(flat[:, start : start + size].view(flat.shape[0], *shape))
        start += size
    return views


def mean_nll_gradient(log_probs: Tensor, labels: Tensor) -> Tensor:
    """d/d(logits) of the sum over members of each member's mean NLL: log_probs [K, B, C], labels [K, B]."""
    grad = torch.zeros_like(log_probs)
    # nll_loss's backward with the mean reduction: -(1 / B) at each example's label, 0 elsewhere.
    per_label = torch.ones((), dtype=log_probs.dtype, device=log_probs.device).div(labels.shape[1]).neg()
    grad.scatter_(-1, labels.unsqueeze(-1), per_label.expand(*labels.shape, 1))
    return torch.ops.aten._log_softmax_backward_data(grad, log_probs, -1, log_probs.dtype)


@dataclass(frozen=True)
class WideLinear:
    """One Linear layer of every member: stacked views of the flat parameters and of their gradients."""

    weight: Tensor  # [K, out, in]
    bias: Tensor  # [K, out]
    weight_grad: Tensor
    bias_grad: Tensor


class WideMLP:
    """The members' models stacked: parameters and gradients in one [K, P] tensor each.

    Each member model keeps its own `nn.Parameter` objects, re-pointed at its row's views (and their `.grad` at
    its row of the gradients), so its optimizer, gradient clipping, evaluation and final parameters see the
    member's values.
    """

    def __init__(self, models: list[nn.Sequential]) -> None:
        member_params = [list(model.parameters()) for model in models]
        shapes = [param.shape for param in member_params[0]]
        self.flat = torch.stack([torch.cat([param.detach().flatten() for param in params]) for params in member_params])
        self.flat_grad = torch.zeros_like(self.flat)
        self.parameters = _views(self.flat, shapes)
        self.gradients = _views(self.flat_grad, shapes)
        for k, params in enumerate(member_params):
            for stacked, stacked_grad, param in zip(self.parameters, self.gradients, params):
                param.data = stacked[k]
                param.grad = stacked_grad[k]  # each backward overwrites it in place
        self.member_parameters = member_params
        pairs = iter(zip(self.parameters, self.gradients))
        self.layers: list[WideLinear | None] = []  # None: a ReLU
        for module in models[0]:
            if isinstance(module, nn.Linear):
                (weight, weight_grad), (bias, bias_grad) = next(pairs), next(pairs)
                self.layers.append(WideLinear(weight, bias, weight_grad, bias_grad))
            else:
                self.layers.append(None)
        self._activations: list[Tensor] = []

    def __len__(self) -> int:
        return self.flat.shape[0]

    def forward(self, inputs: Tensor) -> Tensor:
        """Outputs [K, B, classes] of inputs [K, B, features] (member k's model on its own batch), kept for `backward`."""
        self._activations = [inputs]
        for layer in self.layers:
            hidden = self._activations[-1]
            if layer is None:
                self._activations.append(torch.relu(hidden))
            else:
                self._activations.append(torch.baddbmm(layer.bias.unsqueeze(1), hidden, layer.weight.transpose(1, 2)))
        return self._activations[-1]

    @torch.no_grad()
    def backward(self, grad: Tensor) -> None:
        """Write every member's parameter gradients into `flat_grad`, given d(loss)/d(outputs) of the last forward."""
        for depth in reversed(range(len(self.layers))):
            layer, inputs, output = self.layers[depth], self._activations[depth], self._activations[depth + 1]
            if layer is None:
                grad = torch.ops.aten.threshold_backward(grad, output, 0)
                continue
            torch.sum(grad, 1, out=layer.bias_grad)
            layer.weight_grad.copy_(grad.transpose(1, 2).bmm(inputs))  # bmm into a strided out= takes a 2x slower path
            if depth > 0:
                grad = grad.bmm(layer.weight)
        self._activations = []
