"""`optbench report PATH... [-o DIR]`: argument parsing and terminal output for the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optbench.errors import OptbenchError


def parser() -> argparse.ArgumentParser:
    """The `optbench report` argument parser."""
    p = argparse.ArgumentParser(
        prog="optbench report",
        description="Turn optbench runs (a run dir, a sweep dir, or several) into comparison figures, "
        "summary tables with statistics, and one self-contained report.html. Runs are found "
        "recursively (any folder holding train.csv; a tune sweep's stage-1 trials are summarised "
        "from its tuning.csv); runs that differ only by seed are grouped.",
        epilog="example: optbench report multirun/2026-11-21/10-00-00   "
        "optbench report outputs/a outputs/b -o cmp/ --format svg",
    )
    p.add_argument("paths", nargs="+", type=Path, help="run dirs, sweep dirs, or folders holding them")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="where to write the report (default: PATH/report for one PATH, ./report for several)",
    )
    p.add_argument("--format", choices=("png", "svg", "pdf"), default="png", help="figure format (default png)")
    p.add_argument("--window", type=int, default=50, help="moving-average window in iterations (default 50)")
    p.add_argument("--linear-loss", action="store_true", help="plot the training loss on a linear y axis (default log)")
    p.add_argument(
        "--gif",
        action="store_true",
        help="also write trajectory.gif for 2-D tasks: the optimizers' paths drawn step by step",
    )
    return p


def default_out_dir(paths: list[Path]) -> Path:
    """Where a report goes unless told: DIR/report for one dir, ./report for several."""
    return paths[0] / "report" if len(paths) == 1 else Path("report")


def main(argv: list[str]) -> int:
    """Run `optbench report` with `argv`; returns the exit status."""
    args = parser().parse_args(argv)
    from optbench.config.validation import (
        Number,  # torch's import waits until the arguments parse (and --help is quick)
    )

    if message := Number("--window 50", whole=True, low=1, says="a positive number of iterations").problem(
        "--window", args.window
    ):
        parser().error(message)
    out = args.out or default_out_dir(args.paths)
    from optbench.reporting.build import build_report  # pandas/matplotlib load only once arguments are valid
    from optbench.reporting.table import to_terminal

    try:
        report = build_report(
            args.paths, out, fmt=args.format, window=args.window, log_loss=not args.linear_loss, gif=args.gif
        )
    except OptbenchError as exc:
        print(f"optbench report: error: {exc}", file=sys.stderr)
        return 2
    print(f"{report.subtitle} · {len(report.runs)} runs in {len(report.groups)} groups\n")
    print(to_terminal(report.table))
    for run in (run for run in report.runs if not run.clean):
        print(f"note: {run.path}: {run.status}" + (f" ({'; '.join(run.problems)})" if run.problems else ""))
    print(f"\nwrote {len(report.files)} files to {out}; open {out / 'report.html'} in a browser")
    return 0
