"""`optbench report`: comparison figures and a summary table for one run, a sweep, or many."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from optbench.records import write_text_atomic
from optbench.report import plots
from optbench.report.groups import Group, group_runs
from optbench.report.runs import Run, discover, load_run
from optbench.report.table import summary_table, to_markdown

FORMATS = ("png", "svg", "pdf")


@dataclass
class Report:
    """What a report found and wrote."""

    runs: list[Run]
    groups: list[Group]
    table: pd.DataFrame
    files: list[Path]
    subtitle: str


def _describe(runs: list[Run]) -> str:
    """`mnist · mlp 784-100-10 · 3000 iterations`, listing every value where runs differ."""
    def values(describe) -> str:
        found = []
        for run in runs:
            value = describe(run)
            if value and value not in found:
                found.append(value)
        return " / ".join(found) or "?"

    dataset = values(lambda run: run.summary.get("dataset"))
    model = values(lambda run: " ".join(filter(None, [
        run.summary.get("model"), "-".join(str(w) for w in run.summary.get("model_layers", []))])))
    iterations = values(lambda run: str(run.summary.get("iterations", "")))
    return f"{dataset} · {model} · {iterations} iterations"


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


def build_report(paths: list[Path], out_dir: Path, *, fmt: str = "png", window: int = 50,
                 log_loss: bool = True) -> Report:
    """Read every run under `paths`, write figures, summary.csv and summary.md into `out_dir`."""
    runs = [load_run(path) for path in discover(paths)]
    groups = group_runs(runs)
    table = summary_table(groups, window)
    subtitle = _describe(runs)
    order = list(table.label)  # best first: legends read top-down like the table
    groups.sort(key=lambda group: order.index(group.label))
    palette = plots.styles(order)

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "train_loss": plots.training_curves(groups, "loss", window, subtitle, log_loss, palette),
        "train_accuracy": plots.training_curves(groups, "accuracy", window, subtitle, False, palette),
        "test_accuracy": plots.test_accuracy(groups, subtitle, palette),
        "final_accuracy": plots.final_accuracy_bars(table, subtitle, palette),
    }
    by_label = {group.label: group for group in groups}
    for label, group in by_label.items():  # scratch/X next to X: the lab's overlay, automatically
        if label.startswith("scratch/") and label.removeprefix("scratch/") in by_label:
            twin = by_label[label.removeprefix("scratch/")]
            name = "pair_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in twin.label)
            figures[name] = plots.scratch_pair(twin, group, window, subtitle)
    files = [plots.save(figure, out_dir / f"{name}.{fmt}") for name, figure in figures.items()]

    write_text_atomic(out_dir / "summary.csv", table.to_csv(index=False))
    images = "\n".join(f"![{name}]({name}.{fmt})" for name in figures)
    markdown = (f"# optbench report\n\n{subtitle} · {len(runs)} runs in {len(groups)} groups\n\n"
                f"{to_markdown(table)}\n{_problems_section(runs)}\n{images}\n")
    write_text_atomic(out_dir / "summary.md", markdown)
    files += [out_dir / "summary.csv", out_dir / "summary.md"]
    return Report(runs, groups, table, files, subtitle)
