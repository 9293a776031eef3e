"""From-scratch optimizers written from their update equations, verified against torch.optim,
and Lookahead, which wraps any optimizer."""

from optbench.optim.adam import Adam, Adamax, AdamTF, AdamW, NAdam, RAdam
from optbench.optim.adaptive import Adadelta, Adagrad, RMSprop
from optbench.optim.base import ScratchOptimizer
from optbench.optim.lookahead import Lookahead
from optbench.optim.sgd import SGD, Momentum, Nesterov

__all__ = [
    "SGD",
    "Momentum",
    "Nesterov",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamTF",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "ScratchOptimizer",
    "Lookahead",
]
