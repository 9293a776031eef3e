"""Optimizer group: check and build the configured optimizer (a `_partial_` node) for a model, with its
parameter groups, and read the protocol its config declares (closure, create_graph, train/eval)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, fields
from fnmatch import fnmatch
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from optbench.errors import OptbenchError
from optbench.optim import Lookahead
from optbench.optim.multi import MultiOptimizer

# Keys of an optimizer's config that are optbench's, not constructor arguments.
RESERVED_KEYS = ("protocol", "param_groups")


@dataclass(frozen=True)
class Protocol:
    """How the trainer must drive an optimizer, declared in its config's `protocol:` node."""

    closure: bool = False  # step(closure): the optimizer re-evaluates the minibatch loss itself (LBFGS)
    create_graph: bool = False  # backward(create_graph=True): it differentiates the gradient (Hessian-vector)
    train_eval: bool = False  # optimizer.train() for steps, optimizer.eval() for evaluations (schedule-free)
    extra: str | None = None  # the optbench extra that installs its package (e.g. zoo)
    lookahead: bool | str = True  # true, or why Lookahead cannot wrap it
    schedule: bool | str = True  # true, or why an lr schedule does not apply
    vectorize: bool | str = True  # true, or why hydra/launcher=vectorized runs it alone


def protocol_of(cfg: DictConfig, name: str) -> Protocol:
    """The optimizer's declared protocol (all defaults when its config has no `protocol:` node)."""
    node = cfg.get("protocol")
    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else {}
    known = {f.name for f in fields(Protocol)}
    if unknown := sorted(set(node) - known):
        raise OptbenchError(
            f"optimizer={name}: protocol.{unknown[0]} is not a protocol setting; the settings are "
            f"{', '.join(sorted(known))}."
        )
    return Protocol(**node)


def optimizer_class(cfg: DictConfig, name: str, protocol: Protocol) -> type:
    """The optimizer class a `_target_` node names; a missing optional package is one message naming the
    install command."""
    target = str(cfg._target_)
    module = target.split(".", 1)[0]
    if protocol.extra and importlib.util.find_spec(module) is None:
        raise OptbenchError(
            f"optimizer={name} needs the package {module!r}, which is not installed. It comes with optbench's "
            f"'{protocol.extra}' extra: pip install -e '.[{protocol.extra}]' in a checkout, or "
            f"pip install 'optbench[{protocol.extra}]'."
        )
    try:
        return get_class(target)
    except (ImportError, ValueError, AttributeError) as exc:  # what get_class raises for a bad _target_
        raise OptbenchError(f"optimizer={name}: _target_={target!r} cannot be imported ({exc}).") from exc


@dataclass
class GroupSpec:
    """One entry of `optimizer.param_groups`: which parameters, and what they get instead."""

    names: list[str]  # fnmatch patterns on parameter names (any may match); [] = any name
    not_names: list[str]
    ndim: list[int]  # parameter dimensions that match; [] = any
    not_ndim: list[int]
    settings: dict[str, Any]  # hyper-parameters for this group (e.g. weight_decay: 0.0)
    optimizer: DictConfig | None  # another optimizer for these parameters (a `_target_` node), or None

    def matches(self, name: str, param: torch.Tensor) -> bool:
        """True when the parameter meets every selector given."""
        return (
            (not self.names or any(fnmatch(name, p) for p in self.names))
            and not any(fnmatch(name, p) for p in self.not_names)
            and (not self.ndim or param.ndim in self.ndim)
            and param.ndim not in self.not_ndim
        )


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def group_specs(cfg: DictConfig, name: str) -> list[GroupSpec]:
    """The optimizer's `param_groups:` entries, checked."""
    entries = cfg.get("param_groups")
    entries = OmegaConf.to_container(entries, resolve=True) if OmegaConf.is_config(entries) else entries or []
    if not isinstance(entries, list):
        raise OptbenchError(
            f"optimizer.param_groups of optimizer={name} must be a list of groups, e.g. "
            "'+optimizer.param_groups=[{names:[\"*.bias\"],weight_decay:0.0}]'."
        )
    specs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"names", "ndim", "not_names", "not_ndim"} & set(entry):
            raise OptbenchError(
                f"optimizer.param_groups[{index}] of optimizer={name} selects no parameters: give names (globs on "
                'parameter names, e.g. ["*.bias"]), not_names, ndim (e.g. 1) or not_ndim, then the settings '
                "those parameters get (e.g. weight_decay: 0.0)."
            )
        settings = {k: v for k, v in entry.items() if k not in ("names", "not_names", "ndim", "not_ndim", "optimizer")}
        other = OmegaConf.create(entry["optimizer"]) if entry.get("optimizer") else None
        specs.append(
            GroupSpec(
                _as_list(entry.get("names")),
                _as_list(entry.get("not_names")),
                _as_list(entry.get("ndim")),
                _as_list(entry.get("not_ndim")),
                settings,
                other,
            )
        )
    return specs


def split_parameters(
    named: list[tuple[str, torch.nn.Parameter]], specs: list[GroupSpec]
) -> list[list[torch.nn.Parameter]]:
    """The parameters of each spec (first match wins), then the rest: `len(specs) + 1` lists."""
    parts: list[list[torch.nn.Parameter]] = [[] for _ in range(len(specs) + 1)]
    for param_name, param in named:
        index = next((i for i, spec in enumerate(specs) if spec.matches(param_name, param)), len(specs))
        parts[index].append(param)
    return parts


def _instantiate(cfg: DictConfig, groups: list[dict[str, Any]], name: str) -> torch.optim.Optimizer:
    try:
        # _convert_=all: plain lists, not ListConfig, must reach torch (betas end up in state_dict).
        factory = instantiate(cfg, _convert_="all", _partial_=True)
        return factory(groups)
    except Exception as exc:  # the constructor's own checks (torch's ValueError, pytorch_optimizer's own errors)
        raise OptbenchError(
            f"optimizer={name} could not be built from its configuration: {exc}. Check the "
            f"optimizer.* overrides on the command line against configs/optimizer/{name}.yaml "
            "(e.g. optimizer.lr=0.01)."
        ) from exc


def build_optimizer(
    cfg: DictConfig, model: torch.nn.Module, name: str, lookahead: DictConfig | None = None
) -> torch.optim.Optimizer:
    """Build `cfg` (a `_partial_: true` node, checked by `optbench.config.validation`) for the model's parameters: split into its
    `param_groups` (some perhaps with an optimizer of their own, stepped together), wrapped in
    Lookahead if enabled."""
    own = OmegaConf.masked_copy(cfg, [k for k in cfg if k not in RESERVED_KEYS])
    specs = group_specs(cfg, name)
    *selected, rest = split_parameters(list(model.named_parameters()), specs)
    main_groups = [{"params": rest}] * bool(rest) + [
        {"params": params, **spec.settings} for spec, params in zip(specs, selected) if params and not spec.optimizer
    ]
    if not main_groups:
        raise OptbenchError(
            f"optimizer={name}: its param_groups leave no parameter of this model to "
            f"{own._target_} itself. Check the selectors in optimizer.param_groups."
        )
    optimizers = [_instantiate(own, main_groups, name)]
    # Entries naming the same other optimizer (Muon's AdamW for biases and for embeddings) share one instance.
    others: dict[str, tuple[DictConfig, list[dict[str, Any]]]] = {}
    for spec, params in zip(specs, selected):
        if spec.optimizer is not None and params:
            key = OmegaConf.to_yaml(spec.optimizer, resolve=True)
            others.setdefault(key, (spec.optimizer, []))[1].append({"params": params, **spec.settings})
    for other, groups in others.values():
        optimizers.append(_instantiate(other, groups, name))
    optimizer = optimizers[0] if len(optimizers) == 1 else MultiOptimizer(optimizers)
    if lookahead is None or not lookahead.enabled:
        return optimizer
    protocol = protocol_of(cfg, name)
    if protocol.lookahead is not True:
        raise OptbenchError(f"lookahead.enabled=true does not work with optimizer={name}: {protocol.lookahead}")
    return Lookahead(optimizer, k=lookahead.k, alpha=lookahead.alpha)
