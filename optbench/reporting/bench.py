"""The opening of a bench's report: the verdict in one paragraph, verdicts.csv and leaderboard.csv as tables,
and the tuning-budget figure per task (expected best validation value after k stage-1 trials)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from optbench.reporting.document import Section
from optbench.reporting.plots import new_figure, outside_legend, save, styles

log = logging.getLogger(__name__)

LEADERBOARD_CSV = "leaderboard.csv"
VERDICTS_CSV = "verdicts.csv"
TUNING_BUDGET_CSV = "tuning_budget.csv"
BENCH_JSON = "bench.json"


def _read(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        log.warning("%s is unreadable (%s): the report leaves it out", path, exc)
        return None


def _number(value: float, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


LISTED = 6  # comparisons named per kind of verdict in the paragraph; the rest are counted


def _listing(items: list[str]) -> str:
    shown = items[:LISTED] + ([f"{len(items) - LISTED} more"] if len(items) > LISTED else [])
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def verdict_paragraph(verdicts: pd.DataFrame, leaderboard: pd.DataFrame) -> list[str]:
    """One paragraph per new optimizer: where it is better, worse, or not detectably different, and its score."""
    lines = []
    scores = leaderboard[leaderboard.task == "suite"]
    for optimizer, rows in verdicts.groupby("optimizer", sort=False):
        parts = []
        for verdict in ("better", "worse"):
            chosen = rows[rows.verdict == verdict]
            if len(chosen):
                parts.append(
                    f"**{verdict}** than "
                    + _listing(
                        [
                            f"{r.baseline.split(' (')[0]} on {r.task} "
                            + (
                                f"(by {abs(r.difference):.3g}, p_holm={r.p_holm:.2g})"
                                if not pd.isna(r.p_holm)
                                else f"({'it' if verdict == 'worse' else r.baseline.split(' (')[0]} completed no run)"
                            )
                            for r in chosen.itertuples()
                        ]
                    )
                )
        same = rows[rows.verdict == "no significant difference"]
        if len(same):
            items = []
            for r in same.itertuples():
                if r.difference == 0 and pd.isna(r.p):
                    reach = "identical on every seed"
                elif not pd.isna(r.detectable):
                    reach = f"these seeds detect {r.detectable:.3g} or more"
                else:
                    reach = "too few common seeds to test"
                items.append(f"{r.baseline.split(' (')[0]} on {r.task} ({reach})")
            parts.append("**no significant difference** from " + _listing(items))
        mine = scores[(scores.optimizer == optimizer) & (scores.source == "this run")]
        theirs = scores[scores.source != "this run"].sort_values("mean", ascending=False)
        score = ""
        if len(mine):
            score = f" AlgoPerf's score on steps across the suite: {mine['mean'].iloc[0]:.3f}" + (
                f" (the best baseline's, {theirs.optimizer.iloc[0]}: {theirs['mean'].iloc[0]:.3f})."
                if len(theirs)
                else "."
            )
        lines.append(
            f"**{optimizer}** against the shipped baselines ({len(rows)} paired comparisons over seeds, Holm-corrected "
            f"over all of them, 5%): " + "; ".join(parts) + "." + score
        )
    return lines


def readable_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """verdicts.csv as the report shows it: text cells, the interval beside the difference."""
    return pd.DataFrame(
        {
            "optimizer": verdicts.optimizer,
            "baseline": verdicts.baseline.str.split(" \\(").str[0],
            "task": verdicts.task,
            "difference [95% CI]": [
                f"{_number(r.difference)} [{_number(r.ci_low)}, {_number(r.ci_high)}]" for r in verdicts.itertuples()
            ],
            "p (Holm)": verdicts.p_holm.map(lambda p: _number(p, 2)),
            "verdict": verdicts.verdict,
            "detectable": verdicts.detectable.map(lambda d: _number(d, 3)),
            "seeds needed": verdicts.seeds_needed.map(lambda n: "" if pd.isna(n) else str(int(n))),
        }
    )


def readable_leaderboard(board: pd.DataFrame) -> pd.DataFrame:
    """leaderboard.csv as the report and the docs show it: text cells, the interval beside the mean."""
    return pd.DataFrame(
        {
            "task": board.task,
            "optimizer": board.optimizer,
            "source": board.source,
            "setting": board.setting.fillna(""),
            "metric": board.metric,
            "mean [95% CI]": [
                _number(r.mean)
                + (
                    f" [{_number(r.ci_low)}, {_number(r.ci_high)}]"
                    if r.task != "suite" and not pd.isna(r.ci_low)
                    else ""
                )
                for r in board.itertuples()
            ],
            "steps to target": board.steps_to_target.map(lambda v: _number(v, 6)),
            "expected best after 1 / all trials": [
                ""
                if r.task == "suite" or pd.isna(r.expected_best_1)
                else f"{_number(r.expected_best_1)} / {_number(r.expected_best_all)}"
                for r in board.itertuples()
            ],
            "lr decades near best": board.lr_width.map(lambda w: _number(w, 2)) if "lr_width" in board else "",
        }
    )


def budget_figure(budget: pd.DataFrame, task: str):
    """Expected best validation value after k stage-1 trials, one line per optimizer (Tang et al. 2020)."""
    figure, axes = new_figure(f"Tuning budget: {task}", "expected best validation value after k trials")
    rows = budget[budget.task == task]
    labels = list(dict.fromkeys(rows.label))
    palette = styles(labels)
    for label in labels:
        line = rows[rows.label == label]
        axes.plot(line.k, line.expected_best, marker="o", label=label, color=palette[label].colour)
    axes.set_xlabel("stage-1 trials (k)")
    axes.set_ylabel(str(rows.metric.iloc[0]).replace("test_", "validation ") if len(rows) else "")
    outside_legend(axes, len(labels))
    return figure


def bench_sections(folder: Path, out_dir: Path, fmt: str = "png") -> tuple[list[Section], list[Path]]:
    """The verdict and leaderboard sections (and the tuning-budget figures) when `folder` is a bench's sweep dir."""
    verdicts, board = _read(folder / VERDICTS_CSV), _read(folder / LEADERBOARD_CSV)
    if verdicts is None or board is None:
        return [], []
    budget = _read(folder / TUNING_BUDGET_CSV)
    try:
        said = [f"- {note}" for note in json.loads((folder / BENCH_JSON).read_text()).get("notes", [])]
    except (OSError, ValueError, AttributeError):
        said = []
    figures = []
    if budget is not None and len(budget):
        for task in dict.fromkeys(budget.task):
            name = f"tuning_budget_{task}.{fmt}"
            figures.append(save(budget_figure(budget, task), out_dir / name))
    sections = [
        Section(
            "Verdict",
            " ".join(verdict_paragraph(verdicts, board))
            or "No comparison: no shipped baseline ran these tasks with this protocol (see the log for why).",
            readable_verdicts(verdicts),
            notes=[
                "`difference` is the new optimizer's final test value of the task's target metric minus the "
                "baseline's, averaged over the seeds both ran (paired by seed: same initialisation and batches); "
                "`detectable` is the smallest difference these seeds detect at 5% with 80% power; `seeds needed`, "
                "how many seeds the observed difference would need to be significant.",
                *said,
            ],
        ),
        Section(
            "Leaderboard",
            "Every optimizer on every task, this run's and the shipped baselines' (leaderboard.csv), and AlgoPerf's "
            "score on steps across the suite (task `suite`).",
            readable_leaderboard(board),
            figures=figures,
        ),
    ]
    return sections, figures
