"""A config's fingerprint: a short hash of everything in it that can change a run's numbers."""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from optbench.runtime.device import resolved_type

# Settings that never change a run's numbers: left out of a run's fingerprint and of report labels.
NON_RESULT_KEYS = ("progress", "auto_report", "resume", "threads", "dataset.root", "logger")


def config_fingerprint(cfg: DictConfig, ignore: tuple[str, ...] = ()) -> str:
    """A short hash of everything in the job's config that can change its numbers (less the `ignore` keys).

    `device=auto` counts as the device it resolves to on this host, so `resume=true` never takes a
    CPU run for a GPU run of the same config (or the other way round).
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    if isinstance(container.get("device"), dict) and "type" in container["device"]:
        container["device"]["type"] = resolved_type(str(container["device"]["type"]))
    for key in (*NON_RESULT_KEYS, *ignore):
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True, default=str).encode()).hexdigest()[:16]
