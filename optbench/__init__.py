"""optbench: benchmark PyTorch optimizers from the command line, configured with Hydra.

From Python: `optbench.run(...)`, `optbench.sweep(...)`, `optbench.report(...)` (see optbench/api.py; the report's
package is `optbench.reporting`). They are loaded on first use, so `import optbench` stays light for the command line and Hydra's plugins.
"""

from typing import Any

__version__ = "0.1.0"

_API = ("run", "sweep", "report", "Result", "Sweep")
__all__ = ["run", "sweep", "report", "Result", "Sweep", "Report", "OptbenchError", "__version__"]


def __getattr__(name: str) -> Any:
    """The Python API's names, imported when first asked for."""
    if name in _API:
        from optbench import api

        return getattr(api, name)
    if name == "OptbenchError":
        from optbench.errors import OptbenchError

        return OptbenchError
    if name == "Report":  # what optbench.report(*dirs) returns
        from optbench.reporting.build import Report

        return Report
    raise AttributeError(f"module 'optbench' has no attribute {name!r}")
