"""Model group: the networks optbench trains, built by Hydra's `instantiate` from `configs/model/`.

MLP, Conv2c2d and Linear live here; the transformer language model in `optbench.model.gpt`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from optbench.errors import OptbenchError, instantiate_checked


def build_model(cfg: DictConfig, in_features: int, num_classes: int) -> nn.Module:
    """Instantiate the configured model for inputs of `in_features` and `num_classes` outputs."""
    return instantiate_checked(
        cfg,
        in_features=in_features,
        num_classes=num_classes,
        _convert_="all",
        what="The model",
        hint="Check model=... and the model.* overrides against configs/model/ (e.g. model=mlp model.hidden=[100]).",
    )


INITS = ("default", "lab", "algoperf")
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
# AlgoPerf's pytorch_default_init (algoperf/init_utils.py): LeCun normal, as JAX's initializer draws it: a
# normal truncated at two std, its std divided by that truncated normal's own (0.8796...) so the weights' std
# is sqrt(1 / fan_in).
TRUNCATED_NORMAL_STD = 0.87962566103423978


class MLP(nn.Sequential):
    """Fully connected network: in_features -> hidden[0] -> ... -> num_classes, ReLU (or sigmoid) between.

    init="default" keeps torch's Linear initialisation; init="lab" redraws the weights from
    N(0, 1/n_in) (the lab's variant of Xavier) and zeroes the biases; init="algoperf" is AlgoPerf's
    `pytorch_default_init` (LeCun normal truncated at two std, zero biases), layer by layer.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (100,),
        init: str = "default",
        activation: str = "relu",
    ) -> None:
        widths = list(hidden)
        layers: list[nn.Module] = []
        for n_in, n_out in zip([in_features, *widths], widths):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], num_classes))
        super().__init__(*layers)
        for layer in self:
            if not isinstance(layer, nn.Linear):
                continue
            if init == "lab":
                nn.init.normal_(layer.weight, mean=0.0, std=(1.0 / layer.in_features) ** 0.5)
                nn.init.zeros_(layer.bias)
            elif init == "algoperf":
                std = math.sqrt(1.0 / layer.in_features) / TRUNCATED_NORMAL_STD
                nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.constant_(layer.bias, 0.0)


class Linear(nn.Linear):
    """y = w·x + b, starting from given values (the lecture's thermometer model starts at w=1, b=0)."""

    def __init__(self, in_features: int, num_classes: int, weight: float = 1.0, bias: float = 0.0) -> None:
        super().__init__(in_features, num_classes)
        with torch.no_grad():
            self.weight.fill_(weight)
            self.bias.fill_(bias)


class Conv2c2d(nn.Sequential):
    """DeepOBS's 2c2d CNN for 28x28 grey images: two 5x5 conv layers (32, 64 filters), each with
    ReLU and 2x2 max-pool, then FC 1024 with ReLU and FC `num_classes`.

    Weights start from a normal with std 0.05 truncated at two std, biases at 0.05 (DeepOBS's init).
    Inputs arrive as flat rows (the dataset group's format) and are reshaped to square images.
    """

    def __init__(
        self, in_features: int, num_classes: int, channels: Sequence[int] = (32, 64), hidden: int = 1024
    ) -> None:
        side = math.isqrt(in_features)
        if side * side != in_features or side % 4:
            raise OptbenchError(
                f"model=conv2c2d needs square single-channel images whose side is a multiple of 4 (28x28 "
                f"for MNIST / Fashion-MNIST), but the dataset has {in_features} features per example. "
                "Use it with dataset=mnist or dataset=fashion_mnist."
            )
        first, second = channels
        super().__init__(
            nn.Unflatten(1, (1, side, side)),
            nn.Conv2d(1, first, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(second * (side // 4) ** 2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        for layer in self:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(layer.weight, std=0.05, a=-0.1, b=0.1)
                nn.init.constant_(layer.bias, 0.05)
