"""The answer of `optbench bench`: leaderboard.csv (every optimizer on every task, this run's and the shipped
baselines') and verdicts.csv (each new optimizer against each baseline, task by task: better, worse or no
significant difference, by how much, how sure).

Every number comes from the run dirs (this sweep's and the baselines', read by the same reader): the final test
value of the task's target metric per seed, its steps (and, where the machines match, seconds) to the target,
and the stage-1 trials' validation values for the expected best after k trials.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from optbench.bench.baselines import BASELINES, Baseline, arm_trials, load_baselines, record_notes
from optbench.bench.suite import Suite, SuiteTask, differing, identity
from optbench.config.compose import override_key
from optbench.config.fingerprint import NON_RESULT_KEYS
from optbench.errors import OptbenchError
from optbench.reporting import profiles
from optbench.reporting.bench import LEADERBOARD_CSV, TUNING_BUDGET_CSV, VERDICTS_CSV, verdict_paragraph
from optbench.reporting.sensitivity import lr_width
from optbench.reporting.stats import SIGNIFICANCE, expected_best, holm, paired_t, summarize
from optbench.reporting.table import median_time
from optbench.rundir.reader import Run, discover, first_reaching, load_run
from optbench.rundir.writer import TUNING_CSV, write_text_atomic
from optbench.tasks import Target

log = logging.getLogger(__name__)

THIS_RUN = "this run"
LEADERBOARD_COLUMNS = (
    "task",
    "optimizer",
    "source",
    "setting",
    "seeds",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "steps_to_target",
    "seconds_to_target",
    "expected_best_1",
    "expected_best_all",
    "lr_width",  # beyond the contract's columns: decades of lr near the best (optbench.reporting.sensitivity)
)
VERDICT_COLUMNS = (
    "optimizer",
    "baseline",
    "task",
    "difference",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "verdict",
    "detectable",
    "seeds_needed",
)
# Overrides that make the task or the protocol, not the optimizer's setting.
NOT_SETTING = {"task", "seed", "validation", "suite", "optimizer", "device", *NON_RESULT_KEYS}


@dataclass
class Entry:
    """One optimizer's stage-2 runs on one task (this sweep's or a baseline's), and its stage-1 trials."""

    task: str
    optimizer: str
    source: str
    runs: list[Run]
    tuning: pd.DataFrame
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> Target | None:
        """The task's target, as the runs recorded it."""
        return next((run.target for run in self.runs if run.target is not None), None)

    @property
    def label(self) -> str:
        """The optimizer, marked when it is a baseline (so AdamW benched now and its baseline stay apart)."""
        return self.optimizer if self.source == THIS_RUN else f"{self.optimizer} (baseline)"

    def finals(self) -> dict[int, float]:
        """{seed: final test value of the target metric} over the completed runs."""
        target = self.target
        if target is None:
            return {}
        finals = {
            int(run.summary.get("seed", -1)): float(run.test[target.column].iloc[-1])
            for run in self.runs
            if run.status == "completed" and len(run.test)
        }
        return {seed: value for seed, value in finals.items() if math.isfinite(value)}

    def setting(self, task_overrides: tuple[str, ...] = ()) -> str:
        """The chosen hyper-parameters and any other setting the runs were given beyond the task's (one string)."""
        if not self.runs:
            return "no trial completed (its tuning.csv says why)" if len(self.tuning) else ""
        task_keys = {override_key(o) for o in task_overrides}
        kept = [
            o
            for o in self.runs[0].overrides
            if override_key(o) not in NOT_SETTING | task_keys and not override_key(o).startswith("hydra")
        ]
        return " ".join(kept)

    @property
    def completed_trials(self) -> list[float]:
        """The final validation values of the stage-1 trials that completed (none without tuning.csv's columns)."""
        if not {"status", "final_metric"} <= set(self.tuning.columns):
            return []
        return self.tuning.final_metric[self.tuning.status.eq("completed")].dropna().tolist()

    def lr_width(self) -> float | None:
        """The width in decades of lr of the stage-1 trials near the best one (None unless lr alone was searched)."""
        target = self.target
        if target is None or not self.completed_trials:
            return None
        return lr_width(self.tuning, target.mode == "max")

    def to_target(self, clock: str) -> float:
        """Median over seeds of the `clock` (iteration or seconds) of the first evaluation meeting the target;
        a miss counts as infinite (AlgoPerf's rule); NaN without runs or target."""
        target = self.target
        if target is None or not self.runs:
            return math.nan
        return median_time([first_reaching(run.test, target, clock) for run in self.runs])

    def expected_best(self, k: int | None) -> float:
        """The expected best validation value after k stage-1 trials (all of them for None), over the trials that
        completed; NaN without any."""
        target, values = self.target, self.completed_trials
        if target is None or not values:
            return math.nan
        return expected_best(values, min(k or len(values), len(values)), target.mode == "max")


def _read_tuning(folder: Path) -> pd.DataFrame:
    """A task folder's tuning.csv (empty when it is missing, unreadable or has no arms)."""
    try:
        tuning = pd.read_csv(folder / TUNING_CSV)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return pd.DataFrame()
    return tuning if "arm" in tuning else pd.DataFrame()


def entries_in(folder: Path, task: SuiteTask, source: str | None = None, protocol: dict | None = None) -> list[Entry]:
    """The entries of one task's folder (a bench's `<task>/`, or a baseline's): one per optimizer. An optimizer
    none of whose stage-1 trials completed has no stage-2 runs: its entry holds its trials alone."""
    if not folder.is_dir():
        return []
    protocol = protocol if protocol is not None else task.protocol()
    try:
        runs = [load_run(path) for path in discover([folder])]
    except OptbenchError:
        runs = []
    tuning = _read_tuning(folder)
    entries = []
    for optimizer in dict.fromkeys(run.choices.get("optimizer", "?") for run in runs):
        mine = sorted(
            (run for run in runs if run.choices.get("optimizer") == optimizer), key=lambda r: r.summary.get("seed", 0)
        )
        entries.append(
            Entry(
                task.name,
                optimizer,
                source or THIS_RUN,
                mine,
                arm_trials(tuning, optimizer),
                identity(mine[0].config, protocol),
            )
        )
    for arm in dict.fromkeys(tuning.arm.astype(str)) if len(tuning) else []:
        optimizer = next((w.split("=", 1)[1] for w in arm.split() if w.startswith("optimizer=")), None)
        if optimizer and all(e.optimizer != optimizer for e in entries):
            trials = tuning[tuning.arm.astype(str) == arm]
            entries.append(Entry(task.name, optimizer, source or THIS_RUN, [], trials, identity({}, protocol)))
    return entries


def baseline_entries(baselines: list[Baseline], task: SuiteTask) -> list[Entry]:
    """Each baseline's entry for `task`, its identity built from the protocol it recorded."""
    entries = []
    for baseline in baselines:
        if task.name not in baseline.tasks:
            continue
        protocol = baseline.provenance["tasks"][task.name].get("protocol", {})
        entries += entries_in(baseline.root / task.name, task, baseline.source, protocol)
    return entries


def _blank(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _same_machine(entry: Entry, reference: Entry) -> bool:
    """Seconds compare only between runs on the same device model with the same threads, trained alone or in
    vectorised groups of the same size."""

    def machine(e: Entry) -> set:
        return {
            (
                str(r.summary.get("device", "")).split(":")[0],
                r.summary.get("device_name"),
                r.summary.get("threads"),
                r.summary.get("vectorized_members"),
            )
            for r in e.runs
        }

    return machine(entry) == machine(reference)


def _tuned_metric(tuning: pd.DataFrame) -> str:
    """The metric stage 1 measured (for an entry without runs, whose target no run recorded)."""
    return str(tuning.metric.iloc[0]) if "metric" in tuning and len(tuning) else ""


def leaderboard_rows(entries: list[Entry], suite: Suite, reference: list[Entry]) -> list[dict[str, Any]]:
    """leaderboard.csv's rows for one task's entries; `reference`: this run's entries, whose machine decides
    whether a baseline's seconds are shown."""
    rows = []
    for entry in entries:
        target = entry.target
        summary = summarize(list(entry.finals().values()))
        comparable_seconds = entry.source == THIS_RUN or any(_same_machine(entry, mine) for mine in reference)
        rows.append(
            {
                "task": entry.task,
                "optimizer": entry.optimizer,
                "source": entry.source,
                "setting": entry.setting(suite.task(entry.task).overrides),
                "seeds": " ".join(str(s) for s in sorted(entry.finals())),
                "metric": target.metric if target else _tuned_metric(entry.tuning),
                "mean": summary.mean,
                "ci_low": summary.ci_low,
                "ci_high": summary.ci_high,
                "steps_to_target": _blank(entry.to_target("iteration")),
                "seconds_to_target": _blank(entry.to_target("seconds")) if comparable_seconds else None,
                "expected_best_1": entry.expected_best(1),
                "expected_best_all": entry.expected_best(None),
                "lr_width": entry.lr_width(),
            }
        )
    return rows


def score_rows(entries: list[Entry], tasks: list[str]) -> list[dict[str, Any]]:
    """One leaderboard row per optimizer: AlgoPerf's score on steps over `tasks` (an optimizer without runs on one
    of them missed it)."""
    table = pd.DataFrame(
        [
            {"label": e.label, "task": e.task, "iters_to_target": e.to_target("iteration")}
            for e in entries
            if e.task in tasks
        ]
    )
    if table.empty or not profiles.applies(table):
        return []
    _, scores = profiles.profiles(table)
    sources = {e.label: e for e in entries}
    return [
        {
            "task": "suite",
            "optimizer": sources[row.label].optimizer,
            "source": sources[row.label].source,
            "setting": f"over {', '.join(tasks)}",
            "seeds": "",
            "metric": "algoperf_score_steps",
            "mean": float(row.score),
        }
        for row in scores.itertuples()
    ]


def verdict_rows(new: list[Entry], baselines: list[Entry]) -> list[dict[str, Any]]:
    """verdicts.csv's rows before Holm's correction: each new entry against each baseline entry of its task."""
    rows = []
    for mine in new:
        for theirs in (b for b in baselines if b.task == mine.task):
            target = mine.target or theirs.target  # a new optimizer that never evaluated has none of its own
            if target is None:
                continue
            a, b = mine.finals(), theirs.finals()
            higher = target.mode == "max"
            comparison = paired_t(mine.optimizer, theirs.optimizer, a, b, higher)
            rows.append(
                {
                    "optimizer": mine.optimizer,
                    "baseline": f"{theirs.optimizer} ({theirs.source})",
                    "task": mine.task,
                    "difference": comparison.advantage if higher else -comparison.advantage,  # new minus baseline
                    "ci_low": comparison.ci_low,
                    "ci_high": comparison.ci_high,
                    "p": comparison.p,
                    "p_holm": math.nan,
                    "verdict": "",
                    "detectable": comparison.detectable,
                    "seeds_needed": comparison.seeds_needed,
                    "_better_if_positive": higher,
                    # A side none of whose seeds completed (all diverged or failed) loses to one that completed.
                    "_lost": "new" if not a and b else "baseline" if a and not b else None,
                }
            )
    return rows


def _judge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Holm over every row of the file (an undefined p counts as 1), then each row's verdict in the target's
    direction; a side whose seeds all failed or diverged is worse than one whose seeds completed."""
    adjusted = holm([1.0 if math.isnan(row["p"]) else row["p"] for row in rows]) if rows else []
    for row, p_holm in zip(rows, adjusted):
        row["p_holm"] = p_holm if not math.isnan(row["p"]) else math.nan
        better = (row["difference"] > 0) == row.pop("_better_if_positive")
        significant = not math.isnan(row["p"]) and p_holm < SIGNIFICANCE
        row["verdict"] = ("better" if better else "worse") if significant else "no significant difference"
        lost = row.pop("_lost")
        if lost is not None:
            row["verdict"] = "worse" if lost == "new" else "better"
    return rows


def budget_table(entries: list[Entry]) -> pd.DataFrame:
    """tuning_budget.csv: each entry's expected best validation value after k = 1..trials stage-1 trials."""
    rows = [
        {
            "task": e.task,
            "optimizer": e.optimizer,
            "source": e.source,
            "label": e.label,
            "metric": e.target.metric if e.target else "",
            "k": k,
            "expected_best": e.expected_best(k),
        }
        for e in entries
        for k in range(1, len(e.completed_trials) + 1)
    ]
    return pd.DataFrame(rows, columns=["task", "optimizer", "source", "label", "metric", "k", "expected_best"])


def _version_notes(new: list[Entry], baselines: list[Entry]) -> list[str]:
    """A baseline made with another torch version is compared, and said so (optimizers change between releases)."""
    mine = {str(run.summary.get("torch_version")) for entry in new for run in entry.runs}
    notes = []
    for entry in baselines:
        theirs = {str(run.summary.get("torch_version")) for run in entry.runs if run.summary.get("torch_version")}
        if theirs and theirs != mine:
            notes.append(
                f"the {entry.optimizer} baseline ran torch {', '.join(sorted(theirs))}, this run torch "
                f"{', '.join(sorted(mine))}: differences may come from torch as well as from the optimizers"
            )
    return notes


def write_bench(
    sweep_dir: Path, suite: Suite, tasks: list[str], failed: dict[str, str], baselines_from: Any = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write leaderboard.csv, verdicts.csv and tuning_budget.csv into the sweep dir, comparing with the baselines
    optbench ships (`baselines_from` true), none (false), or those stored under a folder of your own (its path);
    a task that cannot be compared is logged and left out."""
    if baselines_from is False or baselines_from is None:
        baselines, problems = [], []
    else:
        root = BASELINES if baselines_from is True else Path(str(baselines_from)).expanduser()
        baselines, problems = load_baselines(suite.name, root)
    notes = list(problems)  # what the report says beside the verdict, and the log says as it happens
    board: list[dict[str, Any]] = []
    judged: list[dict[str, Any]] = []
    everyone: list[Entry] = []
    scored_tasks, incomparable = [], set()
    for name in tasks:
        task = suite.task(name)
        new = entries_in(sweep_dir / name, task)
        if not new:
            notes.append(f"task {name} has no runs to compare" + (f" ({failed[name]})" if name in failed else ""))
            continue
        theirs = []
        for entry in baseline_entries(baselines, task):
            keys = differing(new[0].identity, entry.identity)
            if not (new[0].runs and entry.runs):  # a side without runs has no config: its protocol must match
                keys = [key for key in keys if key.startswith("protocol.")]
            if keys:
                incomparable.add(name)
                notes.append(
                    f"task {name} is not compared with the {entry.optimizer} baseline ({entry.source}): its task "
                    f"config differs in {', '.join(keys)} (this run: "
                    + ", ".join(f"{k}={new[0].identity.get(k, '<unset>')}" for k in keys[:5])
                    + "; the baseline: "
                    + ", ".join(f"{k}={entry.identity.get(k, '<unset>')}" for k in keys[:5])
                    + ")"
                )
                continue
            theirs.append(entry)
            notes += [
                f"the {entry.optimizer} baseline's run {run.path} is {run.status} ({'; '.join(run.problems)}): its seed "
                "is left out; reinstall optbench or regenerate the baseline"
                for run in entry.runs
                if run.problems
            ]
        notes += _version_notes(new, theirs)
        board += leaderboard_rows(new + theirs, suite, new)
        judged += verdict_rows(new, theirs)
        everyone += new + theirs
        scored_tasks.append(name)
    # The score counts the tasks where no baseline was left out as incomparable (that is no miss of its own); an
    # optimizer that ran a task and completed no trial there missed it, as AlgoPerf counts a failed workload.
    board += score_rows(everyone, [t for t in scored_tasks if t not in incomparable])
    leaderboard = pd.DataFrame(board, columns=LEADERBOARD_COLUMNS)
    write_text_atomic(sweep_dir / TUNING_BUDGET_CSV, budget_table(everyone).to_csv(index=False))
    verdicts = pd.DataFrame(_judge(judged), columns=VERDICT_COLUMNS)
    write_text_atomic(sweep_dir / LEADERBOARD_CSV, leaderboard.to_csv(index=False))
    write_text_atomic(sweep_dir / VERDICTS_CSV, verdicts.to_csv(index=False))
    notes = list(dict.fromkeys(notes))  # a note per baseline can repeat across tasks
    for note in notes:
        log.warning("bench: %s", note)
    record_notes(sweep_dir, notes)
    log.info("bench: %s and %s written to %s", LEADERBOARD_CSV, VERDICTS_CSV, sweep_dir)
    for line in verdict_paragraph(verdicts, leaderboard):
        log.info("bench: %s", line.replace("**", ""))
    return leaderboard, verdicts
