"""The `task` group: benchmark problems, each owning data, model, loss, metrics and a target.

A task preset (`configs/task/<name>.yaml`) picks the dataset and model groups, sets the training
budget and names its class in `task._target_`; `build_task` instantiates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from optbench.config.sources import config_dir, user_config_dirs
from optbench.errors import instantiate_checked
from optbench.tasks.base import Evaluation, StepLoss, Target, Task

__all__ = ["Evaluation", "StepLoss", "Target", "Task", "build_task", "task_list"]


def build_task(cfg: DictConfig) -> Task:
    """Instantiate the job's task from `cfg.task` (its dataset/model nodes stay configs)."""
    return instantiate_checked(
        cfg.task,
        _recursive_=False,
        validation=cfg.get("validation", False),
        batch_size=cfg.get("batch_size"),
        what=f"task={cfg.task.get('name', '?')}",
        hint=f"Check task=... and the task.* overrides against configs/task/{cfg.task.get('name', '')}.yaml.",
    )


def task_list(sources: Any = None) -> str:
    """One line per task preset, `name  description`, for `optbench --help`: the shipped presets and
    those in the config dirs Hydra searches (`--config-dir`), from `hydra.runtime.config_sources`."""
    folders = [Path(config_dir(), "task"), *(root / "task" for root in user_config_dirs(sources))]
    paths: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            paths.setdefault(path.stem, path)  # a shipped name wins, as in Hydra's search path
    width = max((len(name) for name in paths), default=0) + 2  # names in a column, two spaces from the text
    lines = []
    for name, path in sorted(paths.items()):
        description = OmegaConf.select(OmegaConf.load(path), "task.description", default="") or ""
        lines.append(f"  {name:<{width}}{description}")
    return "\n".join(lines)
