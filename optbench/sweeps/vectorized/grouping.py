"""Which jobs of a sweep can train together as one wide model, and why a job runs alone."""

from __future__ import annotations

from collections import defaultdict

from omegaconf import DictConfig, OmegaConf

from optbench.config.fingerprint import config_fingerprint
from optbench.errors import OptbenchError
from optbench.optim.build import protocol_of
from optbench.tasks import build_task

# What the members of one group may differ in; everything else (task, model, data, budget, device,
# CPU settings) must be equal, so one pass of the wide model serves them all.
MEMBER_KEYS = ("optimizer", "schedule", "seed", "lookahead", "grad_clip")
PROTOCOL_REASONS = {
    "closure": "it re-evaluates the loss inside step(closure)",
    "create_graph": "it differentiates its gradient (backward with create_graph)",
    "train_eval": "it switches its weights between train and eval mode (schedule-free)",
}


def solo_reason(cfg: DictConfig) -> str | None:
    """Why the job `cfg` cannot share a wide model with other jobs, or None when it can."""
    try:
        task = build_task(cfg)  # the task says whether it can be widened; nothing is loaded yet
    except OptbenchError:
        return "its task cannot be built (the run reports why)"
    if reason := task.solo_reason():
        return reason
    if OmegaConf.select(cfg, "diagnostics.every") is not None:
        return "diagnostics.every is set: its per-step measurements (Hessian-vector products) run on a single model"
    name = OmegaConf.select(cfg, "hydra.runtime.choices.optimizer") or "?"
    try:
        protocol = protocol_of(cfg.optimizer, name)
    except OptbenchError:
        return "its optimizer's protocol is invalid (the run reports why)"
    for key, reason in PROTOCOL_REASONS.items():
        if getattr(protocol, key):
            return f"optimizer={name}: {reason}"
    if protocol.vectorize is not True:
        return f"optimizer={name}: {protocol.vectorize}"
    return None


def plan_groups(cfgs: list[DictConfig], max_members: int) -> tuple[list[list[int]], dict[int, str]]:
    """Split a sweep's jobs into groups of at most `max_members` (indices into `cfgs`) and jobs that run
    alone, with the reason for each."""
    alone: dict[int, str] = {}
    by_key: dict[str, list[int]] = defaultdict(list)
    for index, cfg in enumerate(cfgs):
        if reason := solo_reason(cfg):
            alone[index] = reason
        else:
            by_key[config_fingerprint(cfg, ignore=MEMBER_KEYS)].append(index)
    groups = []
    for indices in by_key.values():
        if len(indices) == 1:
            alone[indices[0]] = "no other job of the sweep shares its task, model, budget and device settings"
            continue
        groups += [indices[start : start + max_members] for start in range(0, len(indices), max_members)]
    return groups, alone
