"""Building a report: read the runs, group them, and write the figures, tables, summary.md and report.html."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from html import escape  # (the name `html` here is this package's html module)
from pathlib import Path

import pandas as pd

from optbench.reporting import plots, profiles
from optbench.reporting.bench import bench_sections
from optbench.reporting.document import Document, Section, describe, significant_pairs, troubled_runs, tuning_notes
from optbench.reporting.figures import FIGURES, Panel, TrajectoryAnimation
from optbench.reporting.groups import TOP_GROUPS, Group, differing_keys, group_runs
from optbench.reporting.html import image_html, render_html
from optbench.reporting.interactive import SPEC_SUFFIX
from optbench.reporting.markdown import render_markdown
from optbench.reporting.sensitivity import load_tuning
from optbench.reporting.table import pairwise_table, readable, results_table, summary_table
from optbench.rundir.reader import Run, discover, load_run
from optbench.rundir.writer import write_text_atomic

FORMATS = ("png", "svg", "pdf")


@dataclass
class Report:
    """What a report found and wrote into `out_dir`; in Jupyter it shows its table and figures inline."""

    runs: list[Run]
    groups: list[Group]
    table: pd.DataFrame
    files: list[Path]
    subtitle: str
    out_dir: Path

    @property
    def figures(self) -> list[Path]:
        """The PNG figures it drew."""
        return [path for path in self.files if path.suffix == ".png"]

    def save(self, path: str | Path) -> Path:
        """Copy the self-contained report.html to `path` (a file, or a folder to put it in)."""
        target = Path(path)
        if target.is_dir():
            target = target / "report.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.out_dir / "report.html", target)
        return target

    def __repr__(self) -> str:
        return f"Report('{self.out_dir}', {len(self.runs)} runs, {len(self.figures)} figures)"

    def _repr_html_(self) -> str:
        images = "".join(image_html(path, self.out_dir) for path in self.figures)
        return (
            f"<p>optbench report of {len(self.runs)} runs in <code>{escape(str(self.out_dir))}</code></p>"
            f"{self.table.to_html(index=False, na_rep='')}{images}"
        )


def top_groups_note(count: int) -> list[str]:
    """What a task with more than TOP_GROUPS groups shows of them, as the report's note."""
    if count <= TOP_GROUPS:
        return []
    return [
        f"{count} groups: the figures draw, and the paired t-tests compare, the best {TOP_GROUPS} in the table's "
        "order; the table, summary.csv and results.csv have every group."
    ]


def build_report(
    paths: list[Path], out_dir: Path, *, fmt: str = "png", window: int = 50, log_loss: bool = True, gif: bool = False
) -> Report:
    """Read every run under `paths`; write figures, summary.csv, pairwise.csv, results.csv, summary.md and
    report.html (plus performance_profiles.csv across tasks) into `out_dir`. A bench's sweep dir opens with its
    verdict and leaderboard.

    Each task gets its own figures (in `out_dir`, or `out_dir/<task>/` when the runs span several tasks).
    """
    runs = [load_run(path) for path in discover(paths)]
    groups = group_runs(runs)
    table = summary_table(groups, window)
    order = {key: rank for rank, key in enumerate(zip(table.task, table.label))}  # best first, like the table
    groups.sort(key=lambda group: order[(group.task, group.label)])
    tasks = list(dict.fromkeys(table.task))
    pairs = pairwise_table(groups)
    tuning = load_tuning(paths)
    figures = FIGURES + [TrajectoryAnimation()] * gif

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    sections: list[Section] = []
    subtitles: list[str] = []
    for task in tasks:
        task_groups = [group for group in groups if group.task == task]
        task_runs = [run for group in task_groups for run in group.runs]
        panel = Panel(
            task,
            task_groups,
            table[table.task == task],
            describe(task, task_runs),
            plots.styles([group.label for group in task_groups]),
            window,
            log_loss,
            pairs[pairs.task == task],
            tuning[tuning.task == task] if len(tuning) else tuning,
        )
        subtitles.append(panel.subtitle)
        where = out_dir / task if len(tasks) > 1 else out_dir
        where.mkdir(exist_ok=True)
        written = [path for figure in figures for path in figure.write(panel, where, fmt)]
        files += written
        sections.append(
            Section(
                task if len(tasks) > 1 else None,
                f"{panel.subtitle} · {len(task_runs)} runs in {len(task_groups)} groups",
                readable(panel.table),
                tuning_notes(panel.tuning) + top_groups_note(len(task_groups)) + significant_pairs(panel.pairwise),
                written,
                task_groups,
            )
        )

    profile_scores = []
    for clock, name in profiles.CLOCKS.items():
        if not profiles.applies(table, clock):
            continue
        rho, scores = profiles.profiles(table, clock)
        suffix = "" if name == "steps" else f"_{name}"
        figure = plots.save(profiles.profile_figure(rho, scores, clock), out_dir / f"performance_profile{suffix}.{fmt}")
        files.append(figure)
        profile_scores.append(scores.set_index("label").add_suffix(suffix))
        sections.append(
            Section(
                f"Performance profiles across tasks ({name} to target)",
                profiles.description(clock),
                profiles.readable(scores),
                figures=[figure],
            )
        )
    if profile_scores:  # one row per label: the step score and its counts, then the seconds score if any
        combined = pd.concat(profile_scores, axis=1).rename_axis("label").reset_index()
        write_text_atomic(out_dir / "performance_profiles.csv", combined.to_csv(index=False))
        files.append(out_dir / "performance_profiles.csv")

    if len(paths) == 1:  # a bench's sweep dir: its verdict and leaderboard open the report
        opening, drawn = bench_sections(paths[0], out_dir, fmt)
        sections, files = opening + sections, files + drawn
    document = Document(sections, troubled_runs(runs), out_dir)
    outputs = {
        "summary.csv": table.to_csv(index=False),
        "pairwise.csv": pairs.to_csv(index=False),
        "results.csv": results_table(groups, differing_keys(runs)).to_csv(index=False),
        "summary.md": render_markdown(document),
        "report.html": render_html(document, [str(path) for path in paths]),
    }
    for name, text in outputs.items():
        write_text_atomic(out_dir / name, text)
        files.append(out_dir / name)
    files += [spec for figure in files if (spec := figure.with_name(figure.stem + SPEC_SUFFIX)).exists()]
    return Report(runs, groups, table, files, " | ".join(subtitles), out_dir)
