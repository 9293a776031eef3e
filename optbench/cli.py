"""The `optbench` console script: `optbench report ...`, `optbench bench ...`, `optbench export ...` or a Hydra training job/sweep."""

from __future__ import annotations

import sys


def main() -> None:
    """Dispatch `report`, `bench` and `export` to their own parsers; anything else is the Hydra training job (overrides, -m)."""
    if sys.argv[1:2] == ["report"]:
        from optbench.reporting.cli import main as report_main

        sys.exit(report_main(sys.argv[2:]))
    if sys.argv[1:2] == ["bench"]:
        from optbench.bench.cli import main as bench_main

        sys.exit(bench_main(sys.argv[2:]))
    if sys.argv[1:2] == ["export"]:
        from optbench.logger.export import main as export_main

        sys.exit(export_main(sys.argv[2:]))
    if sys.argv[1:2] == ["--version"]:
        from optbench import __version__

        print(f"optbench {__version__}")
        return
    from optbench.train import entry

    entry()
