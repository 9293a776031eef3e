"""Hydra callback: write the report into the sweep dir when a multirun ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class AutoReport(Callback):
    """After `optbench -m ...`, run `optbench report` on the sweep dir (off with auto_report=false)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Build the report from the runs on disk; a failure is logged, the sweep's runs stay."""
        if not config.get("auto_report", True):
            return
        from optbench.reporting.build import build_report
        from optbench.reporting.table import to_terminal

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = build_report([sweep_dir], sweep_dir / "report")
        except Exception:
            log.exception("could not write the report for %s; run `optbench report %s` to retry", sweep_dir, sweep_dir)
            return
        log.info(
            "report for %d runs written to %s (open report.html)\n%s",
            len(report.runs),
            sweep_dir / "report",
            to_terminal(report.table),
        )
