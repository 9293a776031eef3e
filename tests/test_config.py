"""Config composition: every optimizer YAML builds its torch.optim class with torch's defaults."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from conftest import make_cfg
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from optbench.config.compose import compose
from optbench.config.sources import config_dir
from optbench.config.validation import check_config
from optbench.errors import OptbenchError
from optbench.model import MLP
from optbench.optim.build import RESERVED_KEYS, build_optimizer
from optbench.optim.multi import MultiOptimizer

OPTIMIZERS = sorted(p.stem for p in (Path(config_dir()) / "optimizer").glob("*.yaml"))
# Those torch itself provides (the others come with the zoo extra; tests/test_modern_optimizers.py).
TORCH_OPTIMIZERS = [
    name
    for name in OPTIMIZERS
    if OmegaConf.load(Path(config_dir()) / "optimizer" / f"{name}.yaml")._target_.startswith("torch.")
]
NAMED = {  # the values the notebooks (and the README's optimizer table) use instead of torch's defaults
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "nesterov": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    "muon": {"lr": 0.02, "weight_decay": 0.0},  # Keller Jordan's lr; no decay, like the other defaults here
    # stochastic L-BFGS: a line search, few inner steps, a short history (torch's defaults diverged on
    # MNIST minibatches); torch stores max_eval=None as max_iter * 5 // 4
    "lbfgs": {"line_search_fn": "strong_wolfe", "max_iter": 4, "history_size": 10, "max_eval": 5},
}


def test_all_issue_optimizers_are_there():
    expected = {
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
        "adadelta",
        "adamax",
        "nadam",
        "radam",
        "asgd",
        "rprop",
    }
    assert expected <= set(OPTIMIZERS)


def test_defaults_are_the_notebooks():
    cfg = compose()  # the app's own defaults (make_cfg puts tests on the CPU)
    assert (cfg.iterations, cfg.batch_size, cfg.eval_every, cfg.seed) == (3000, 100, 500, 0)
    assert cfg.dataset.name == "mnist" and cfg.device.type == "auto"
    assert list(cfg.model.hidden) == [100] and cfg.optimizer._target_ == "torch.optim.SGD"


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
def test_optimizer_builds_with_torch_defaults(name):
    cfg = make_cfg(f"optimizer={name}")
    optimizer = build_optimizer(cfg.optimizer, MLP(784, 10), name)
    if isinstance(optimizer, MultiOptimizer):  # muon: its first part is the configured class
        optimizer = optimizer.optimizers[0]
    cls = type(optimizer)
    assert f"torch.optim.{cls.__name__}" == cfg.optimizer._target_
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    for key in OmegaConf.to_container(cfg.optimizer):
        if key.startswith("_") or key in RESERVED_KEYS:
            continue
        expected = NAMED.get(name, {}).get(key, defaults[key])
        actual = optimizer.defaults[key]
        assert _as_list(actual) == _as_list(expected), key


def _as_list(value):
    return list(value) if isinstance(value, (tuple, list)) else value  # torch stores tuples


def test_hyperparameters_overridable_and_plain_python():
    cfg = make_cfg("optimizer=adam", "optimizer.lr=0.01", "optimizer.betas=[0.8,0.99]")
    optimizer = build_optimizer(cfg.optimizer, MLP(784, 10), "adam")
    assert optimizer.defaults["lr"] == 0.01
    betas = optimizer.state_dict()["param_groups"][0]["betas"]
    assert type(betas) in (tuple, list) and list(betas) == [0.8, 0.99]  # plain Python, not ListConfig


def test_unknown_key_rejected():
    with pytest.raises(ConfigCompositionException):
        make_cfg("optimizer.lrr=1")
    with pytest.raises(ConfigCompositionException):
        make_cfg("itertions=10")


def test_bad_hyperparameter_is_a_clear_error():
    cfg = make_cfg("optimizer=adam", "optimizer.lr=-1")
    with pytest.raises(OptbenchError, match="optimizer=adam.*Invalid learning rate"):
        build_optimizer(cfg.optimizer, MLP(784, 10), "adam")


def test_model_hidden_layers():
    cfg = make_cfg("model.hidden=[100,100]")
    from hydra.utils import instantiate

    model = instantiate(cfg.model, in_features=784, num_classes=10, _convert_="all")
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(100, 784), (100,), (100, 100), (100,), (10, 100), (10,)]
    assert model(torch.zeros(3, 784)).shape == (3, 10)


@pytest.mark.parametrize("hidden", ["[]", "[100,0]", "[-5]"])
def test_model_rejects_bad_widths(hidden):
    with pytest.raises(OptbenchError, match="model.hidden"):
        check_config(make_cfg(f"model.hidden={hidden}"))


@pytest.mark.parametrize(
    "overrides",
    [
        ("optimizer.lr=0.01", "seed=3"),
        ("task=rosenbrock", "optimizer=lion"),  # group choices only
        ("iterations=50", "optimizer=adam", "optimizer.betas=[0.8,0.99]", "device=cpu", "progress=false"),
        ("task=fmnist_2c2d", "iterations=7", "model.channels=[2,2]", "grad_clip=null"),
        ("task=eos", "+note=x", "~lookahead", "hydra.job.chdir=false", "logger=tensorboard"),
        ("task=quadratic_deep", "iterations=10"),  # the preset's epochs, replaced
        ("hydra/launcher=vectorized", "hydra.launcher.max_members=3", "schedule=warmup_cosine", "schedule.warmup=0.1"),
    ],
)
def test_the_suites_composition_by_parts_is_hydras(overrides):
    """conftest composes a group choice once and applies the value overrides itself: the same config as Hydra's."""
    from conftest import compose_by_parts

    def plain(cfg):
        return OmegaConf.to_container(cfg, resolve=False)

    assert plain(compose_by_parts(*overrides)) == plain(compose(*overrides))
    assert OmegaConf.is_struct(compose_by_parts(*overrides))
