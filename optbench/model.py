"""Model group: the networks optbench trains, built by Hydra's `instantiate` from `configs/model/`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from optbench.errors import OptbenchError


class MLP(nn.Sequential):
    """Fully connected ReLU network: in_features -> hidden[0] -> ... -> num_classes."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (100,)) -> None:
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
