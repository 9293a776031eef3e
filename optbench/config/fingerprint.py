"""A config's fingerprint: a short hash of everything in it that can change a run's numbers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optbench.runtime.device import resolved_type

# Settings that never change a run's numbers: left out of a run's fingerprint and of report labels.
NON_RESULT_KEYS = (
    "progress",
    "auto_report",
    "resume",
    "threads",
    "dataset.root",
    "logger",
    "record_grad_norm",
    "diagnostics",
)
# Settings added after runs were first recorded, at the value that behaves as before they existed: left out of
# fingerprints and of bench identities, so runs made before them still match (resume=true, shipped baselines).
NEUTRAL_SETTINGS = {"grad_clip": None, "task.eval_iters": None}


def without_neutral(flat: dict[str, Any]) -> dict[str, Any]:
    """`flat` (dotted keys) less the NEUTRAL_SETTINGS that hold their neutral value."""
    return {key: value for key, value in flat.items() if key not in NEUTRAL_SETTINGS or value != NEUTRAL_SETTINGS[key]}


def config_fingerprint(cfg: DictConfig, ignore: tuple[str, ...] = ()) -> str:
    """A short hash of everything in the job's config that can change its numbers (less the `ignore` keys).

    `device=auto` counts as the device it resolves to on this host, so `resume=true` never takes a
    CPU run for a GPU run of the same config (or the other way round).
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    if isinstance(container.get("device"), dict) and "type" in container["device"]:
        container["device"]["type"] = resolved_type(str(container["device"]["type"]))
    neutral = [key for key, value in NEUTRAL_SETTINGS.items() if _pick(container, key) == (value,)]
    for key in (*NON_RESULT_KEYS, *ignore, *neutral):
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _pick(container: dict[str, Any], key: str) -> tuple[Any, ...]:
    """(value,) of a dotted key in a nested dict, or () where it is absent."""
    node: Any = container
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ()
        node = node[part]
    return (node,)
