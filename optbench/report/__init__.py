"""`optbench report`: comparison figures and a summary table for one run, a sweep, or many."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from optbench.records import write_text_atomic
from optbench.report import plots
from optbench.report.figures import FIGURES, Panel, TrajectoryAnimation
from optbench.report.groups import Group, differing_keys, group_runs
from optbench.report.runs import Run, discover, load_run
from optbench.report.table import pairwise_table, results_table, summary_table, to_markdown

FORMATS = ("png", "svg", "pdf")


@dataclass
class Report:
    """What a report found and wrote."""

    runs: list[Run]
    groups: list[Group]
    table: pd.DataFrame
    files: list[Path]
    subtitle: str


def _describe(task: str, runs: list[Run]) -> str:
    """`mnist_mlp · mnist · mlp 784-100-10 · 3000 iterations`, listing every value where runs differ."""
    def values(describe) -> str:
        found = []
        for run in runs:
            value = describe(run)
            if value and value not in found:
                found.append(value)
        return " / ".join(found)

    dataset = values(lambda run: run.summary.get("dataset"))
    model = values(lambda run: " ".join(filter(None, [
        run.summary.get("model"), "-".join(str(w) for w in run.summary.get("model_layers", []))])))
    iterations = values(lambda run: str(run.summary.get("iterations", "")))
    parts = [task] + [dataset] * (dataset != task) + [model] + [f"{iterations} iterations"] * bool(iterations)
    return " · ".join(part for part in parts if part and part != "?")


def _problems_section(runs: list[Run]) -> str:
    troubled = [run for run in runs if not run.clean]
    if not troubled:
        return ""
    lines = ["", "## Runs that did not complete cleanly", ""]
    for run in troubled:
        details = [f"{len(run.train)} iterations recorded"]
        if run.summary.get("diverged_at"):
            details.append(f"diverged at iteration {run.summary['diverged_at']}: "
                           f"{run.summary.get('divergence', 'loss not finite')}")
        if run.summary.get("error"):
            details.append(f"error: {run.summary['error']}")
        details += run.problems
        lines.append(f"- `{run.path}`: **{run.status}** ({'; '.join(details)})")
    return "\n".join(lines) + "\n"


def _significant_section(pairs: pd.DataFrame) -> str:
    """The pairs whose difference is significant (Holm-corrected, 5%), one line each, better first."""
    tested = pairs[pairs.p.notna()]
    if tested.empty:
        return ""
    lines = [f"\nPaired t-tests over common seeds, Holm-corrected within the task: {int(tested.significant.sum())} of "
             f"{len(tested)} differences significant at 5%."]
    for row in tested[tested.significant].itertuples():
        better, worse = (row.first, row.second) if row.advantage > 0 else (row.second, row.first)
        lines.append(f"- **{better}** beats **{worse}** on {row.metric.replace('_', ' ')} by {abs(row.advantage):.4g} "
                     f"(n={row.common_seeds}, p={row.p_holm:.2g})")
    return "\n".join(lines) + "\n"


def build_report(paths: list[Path], out_dir: Path, *, fmt: str = "png", window: int = 50,
                 log_loss: bool = True, gif: bool = False) -> Report:
    """Read every run under `paths`, write figures, summary.csv, pairwise.csv, results.csv and summary.md into `out_dir`.

    Each task gets its own figures (in `out_dir`, or `out_dir/<task>/` when the runs span several tasks).
    """
    runs = [load_run(path) for path in discover(paths)]
    groups = group_runs(runs)
    table = summary_table(groups, window)
    order = list(zip(table.task, table.label))  # best first: legends read top-down like the table
    groups.sort(key=lambda group: order.index((group.task, group.label)))
    tasks = list(dict.fromkeys(table.task))
    pairs = pairwise_table(groups)
    figures = FIGURES + [TrajectoryAnimation()] * gif

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    sections, subtitles = [], []
    for task in tasks:
        task_groups = [group for group in groups if group.task == task]
        task_runs = [run for group in task_groups for run in group.runs]
        panel = Panel(task, task_groups, table[table.task == task], _describe(task, task_runs),
                      plots.styles([group.label for group in task_groups]), window, log_loss,
                      pairs[pairs.task == task])
        subtitles.append(panel.subtitle)
        where = out_dir / task if len(tasks) > 1 else out_dir
        where.mkdir(exist_ok=True)
        written = [path for figure in figures for path in figure.write(panel, where, fmt)]
        files += written
        images = "\n".join(f"![{path.stem}]({path.relative_to(out_dir)})" for path in written)
        heading = f"## {task}\n\n" if len(tasks) > 1 else ""
        sections.append(f"{heading}{panel.subtitle} · {len(task_runs)} runs in {len(task_groups)} groups\n\n"
                        f"{to_markdown(panel.table)}\n{_significant_section(panel.pairwise)}\n{images}\n")

    write_text_atomic(out_dir / "summary.csv", table.to_csv(index=False))
    write_text_atomic(out_dir / "pairwise.csv", pairs.to_csv(index=False))
    write_text_atomic(out_dir / "results.csv", results_table(groups, differing_keys(runs)).to_csv(index=False))
    markdown = "# optbench report\n\n" + "\n".join(sections) + _problems_section(runs)
    write_text_atomic(out_dir / "summary.md", markdown)
    files += [out_dir / "summary.csv", out_dir / "pairwise.csv", out_dir / "results.csv", out_dir / "summary.md"]
    return Report(runs, groups, table, files, " | ".join(subtitles))
