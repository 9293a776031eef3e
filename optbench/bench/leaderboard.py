"""The shipped baselines' leaderboard, as docs/leaderboard.md shows it: generated from the files, never typed.

python -m optbench.bench.leaderboard > docs/leaderboard.md
"""

from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from optbench.bench.baselines import load_baselines
from optbench.bench.suite import shipped_suite, suite_names
from optbench.bench.verdict import LEADERBOARD_COLUMNS, baseline_entries, leaderboard_rows, score_rows
from optbench.reporting.bench import readable_leaderboard


def shipped_leaderboard(suite_name: str) -> pd.DataFrame:
    """leaderboard.csv's rows for the baselines shipped for a suite alone (no seconds: they depend on the machine)."""
    suite = shipped_suite(suite_name)
    baselines, _ = load_baselines(suite.name)
    rows, everyone = [], []
    for task in suite.tasks:
        entries = baseline_entries(baselines, task)
        rows += leaderboard_rows(entries, suite, reference=[])
        everyone += entries
    tasks = [t.name for t in suite.tasks if any(e.task == t.name for e in everyone)]
    rows += score_rows(everyone, tasks)
    return pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)


def markdown() -> str:
    """docs/leaderboard.md: each suite's shipped leaderboard and where its baselines come from."""
    parts = [
        "# Shipped baselines\n",
        "What `optbench bench` compares a new optimizer with: the baselines optbench ships, run through each "
        "suite's protocol (see [Benchmark your optimizer](bench.md)). This page is generated from the shipped files "
        "(`python -m optbench.bench.leaderboard > docs/leaderboard.md`; a test checks it is current). `mean` is "
        "the final test value of the task's target metric over the seeds, with its 95% bootstrap interval; steps "
        "to target are the median over seeds (blank: missed on half of them or more); the expected best is the "
        "value after 1 and after all stage-1 trials on the split the suite selects on; the `suite` rows are AlgoPerf's score on steps "
        "across the suite's tasks (1 = fastest everywhere).\n",
    ]
    for name in suite_names():
        board = shipped_leaderboard(name)
        if board.empty:
            continue
        baselines, _ = load_baselines(name)
        table = readable_leaderboard(board).drop(columns=["source"])
        parts.append(f"## suite={name}\n")
        parts.append(tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True) + "\n")
        parts.append("Where they come from:\n")
        for baseline in baselines:
            p = baseline.provenance
            made_with = [f"{k} {v}" for k, v in p.get("libraries", {}).items() if k != "torch"]
            made_with += [f"torch {p['torch_version']}"] if p.get("torch_version") else []
            made_with += [f"{p['threads']} thread{'s' * (p['threads'] != 1)}"] if p.get("threads") else []
            parts.append(
                f"- **{baseline.optimizer}** (`{p.get('optimizer_class', '?')}`; {', '.join(made_with) or p.get('libraries')}): "
                f"{baseline.source}, {p.get('cpu_kind', p.get('device_name', '?'))}, {p.get('date', '?')}; made by "
                f"`{p.get('command', '?')}`"
            )
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
