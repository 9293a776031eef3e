"""Where the Hydra configs live: the shipped `configs/` tree, and the user's own dirs (`--config-dir`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parents[1]  # optbench/


def config_dir() -> str:
    """Absolute path of the `configs/` tree: shipped inside the wheel, or the checkout's top level."""
    packaged = _PACKAGE / "configs"  # a built wheel force-includes configs/ here
    return str(packaged if packaged.is_dir() else _PACKAGE.parent / "configs")


def user_config_dirs(sources: Any) -> list[Path]:
    """The config dirs the user added (`--config-dir`), from Hydra's `hydra.runtime.config_sources`."""
    return [
        Path(source["path"])
        for source in sources or []
        if source.get("schema") == "file" and source.get("provider") != "main"
    ]


def shadowed_user_configs(sources: Any) -> list[str]:
    """The configs in the user's config dirs (`--config-dir`) that a shipped config of the same group
    and name hides: Hydra searches optbench's own configs first."""
    shipped = Path(config_dir())
    hidden = []
    for root in user_config_dirs(sources):
        for path in sorted(root.rglob("*.yaml")):
            relative = path.relative_to(root)
            if relative.parts[0] != "config.yaml" and (shipped / relative).exists():
                hidden.append(str(path))
    return hidden
