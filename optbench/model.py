"""Model group: the networks optbench trains, built by Hydra's `instantiate` from `configs/model/`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from optbench.errors import OptbenchError


def build_model(cfg: DictConfig, in_features: int, num_classes: int) -> nn.Module:
    """Instantiate the configured model for inputs of `in_features` and `num_classes` outputs."""
    try:
        return instantiate(cfg, in_features=in_features, num_classes=num_classes, _convert_="all")
    except InstantiationException as exc:
        if isinstance(exc.__cause__, OptbenchError):
            raise exc.__cause__ from None  # our own message, without Hydra's wrapping
        raise OptbenchError(
            f"The model could not be built from its configuration ({exc}). Check model=... and the "
            "model.* overrides against configs/model/ (e.g. model=mlp model.hidden=[100])."
        ) from exc


INITS = ("default", "lab")


class MLP(nn.Sequential):
    """Fully connected ReLU network: in_features -> hidden[0] -> ... -> num_classes.

    init="default" keeps torch's Linear initialisation; init="lab" redraws the weights from
    N(0, 1/n_in) (the lab's variant of Xavier) and zeroes the biases.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (100,),
                 init: str = "default") -> None:
        widths = list(hidden)
        if not widths or any(not isinstance(w, int) or w <= 0 for w in widths):
            raise OptbenchError(
                f"model.hidden={widths} is not a list of positive layer widths. "
                "Give at least one hidden layer, e.g. model.hidden=[100] or model.hidden=[100,100]."
            )
        layers: list[nn.Module] = []
        for n_in, n_out in zip([in_features, *widths], widths):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        super().__init__(*layers)
        if init not in INITS:
            raise OptbenchError(f"model.init={init!r} is not known: use one of {', '.join(INITS)}.")
        if init == "lab":
            for layer in self:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, mean=0.0, std=(1.0 / layer.in_features) ** 0.5)
                    nn.init.zeros_(layer.bias)


class Linear(nn.Linear):
    """y = w·x + b, starting from given values (the lecture's thermometer model starts at w=1, b=0)."""

    def __init__(self, in_features: int, num_classes: int, weight: float = 1.0, bias: float = 0.0) -> None:
        super().__init__(in_features, num_classes)
        with torch.no_grad():
            self.weight.fill_(weight)
            self.bias.fill_(bias)
