"""Hydra callback: write the report into the sweep dir when a multirun ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

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


UNFINISHED = ("interrupted", "failed", "running")  # `running`: the job's process was killed before it could say


class UnfinishedJobs(Callback):
    """After `optbench -m ...`, one warning naming every job of the sweep that did not finish (its dir, its
    overrides, its SLURM job, how it ended) and how to redo only those: the same command with resume=true."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Read the sweep's summaries on disk; warn about the jobs that did not complete or diverge."""
        from optbench.rundir.summary import load_summary

        sweep_dir = Path(config.hydra.sweep.dir)
        lines, total = [], 0
        for path in sorted(sweep_dir.glob("**/summary.json")):
            total += 1
            try:
                summary = load_summary(path.parent)
            except (OSError, ValueError):
                continue
            if summary.get("status") not in UNFINISHED:
                continue
            overrides = path.parent / ".hydra" / "overrides.yaml"
            what = " ".join(OmegaConf.load(overrides)) if overrides.exists() else ""
            how = summary.get("interrupted_by") or summary.get("error") or "its process ended without a word"
            slurm = f", SLURM job {summary['slurm_job_id']}" if summary.get("slurm_job_id") else ""
            lines.append(f"  {path.parent.relative_to(sweep_dir)} ({what}{slurm}): {summary['status']}, {how}")
        if lines:
            log.warning(
                "%d of the sweep's %d jobs did not finish:\n%s\nRun the same command again with resume=true: the "
                "finished jobs are skipped, these run again.",
                len(lines),
                total,
                "\n".join(lines),
            )
