"""The `optbench` console script: `optbench report ...` or a Hydra training job/sweep."""

from __future__ import annotations

import sys


def main() -> None:
    """Dispatch to the training job (Hydra parses its own arguments: overrides, -m, --help)."""
    if sys.argv[1:2] == ["--version"]:
        from optbench import __version__

        print(f"optbench {__version__}")
        return
    from optbench.train import main as train_main

    train_main()
