"""DeepOBS_Baselines' published runs (fsschneider/DeepOBS_Baselines) as suite=deepobs baselines.

`python -m optbench.bench.deepobs_baselines CHECKOUT` converts a checkout's run files for the problems optbench
reproduces (quadratic_deep, fmnist_2c2d) and the three optimizers published (SGD, Momentum, Adam) into the
baseline layout (optbench/baselines/deepobs/<optimizer>/): per problem, tuning.csv holds the 36 learning rates run
on seed 42 and each stage-2 run dir one of the ten seeds (42..51) of the rate DeepOBS chose, its test.csv the
test loss (and accuracy) after each epoch, its train.csv DeepOBS's minibatch losses thinned. Their config is the
one optbench composes for the same job, so `optbench bench suite=deepobs` compares with them.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from optbench.bench.baselines import BASELINES, FORMAT, folder_name, publish, staging_for, thinned, write_choices
from optbench.bench.suite import shipped_suite
from optbench.config.compose import compose
from optbench.errors import OptbenchError
from optbench.rundir.writer import TUNING_CSV, write_text_atomic
from optbench.sweeps.tuning import TrialScore, parse_dimension, tuning_rows
from optbench.tasks import Target

OPTIMIZERS = {
    "GradientDescentOptimizer": "deepobs/sgd",
    "MomentumOptimizer": "deepobs/momentum",
    "AdamOptimizer": "deepobs/adam",
}
PROBLEMS = ("quadratic_deep", "fmnist_2c2d")
REPOSITORY = "fsschneider/DeepOBS_Baselines"


def _finite(values: list[Any]) -> list[float]:
    """The values up to the first that is not a finite number (a diverged run's tail)."""
    kept = []
    for value in values:
        if value is None or not math.isfinite(float(value)):
            break
        kept.append(float(value))
    return kept


def evaluations(record: dict[str, Any], steps_per_epoch: int) -> pd.DataFrame:
    """test.csv's rows of a DeepOBS run: after epochs 1..N (DeepOBS's entry 0 is before training), while finite."""
    losses = _finite(record["test_losses"][1:])
    accuracies = record.get("test_accuracies")
    return pd.DataFrame(
        {
            "iteration": [steps_per_epoch * (epoch + 1) for epoch in range(len(losses))],
            "loss": losses,
            "accuracy": [float(a) for a in accuracies[1 : len(losses) + 1]] if accuracies else math.nan,
        }
    )


def _score(record: dict[str, Any], table: pd.DataFrame, target: Target, task: str) -> TrialScore:
    values = table[target.column]
    diverged = len(table) < len(record["test_losses"]) - 1
    hits = table.iteration[values.map(target.met).astype(bool)]
    higher = target.mode == "max"
    return TrialScore(
        status="diverged" if diverged else "completed",
        task=task,
        metric=target.metric,
        higher_is_better=higher,
        final=float(values.iloc[-1]) if len(values) and not diverged else math.nan,
        best=float(values.max() if higher else values.min()) if len(values) else math.nan,
        time_to_target=float(hits.iloc[0]) if len(hits) else math.nan,
        threshold=target.threshold,
        budget=float(len(record["minibatch_train_losses"])),
    )


def _write_run(folder: Path, record: dict[str, Any], table: pd.DataFrame, overrides: list[str], cfg: Any) -> None:
    """One of the chosen rate's seeds as a run dir."""
    (folder / ".hydra").mkdir(parents=True)
    target = Target.from_config(cfg.task.target)
    write_text_atomic(folder / "test.csv", table.to_csv(index=False))
    losses = record["minibatch_train_losses"]
    kept = thinned(len(losses))
    train = pd.DataFrame(
        {
            "iteration": [i + 1 for i in kept],
            "loss": [losses[i] for i in kept],
            "accuracy": math.nan,
            "lr": record["learning_rate"],
        }
    )
    write_text_atomic(folder / "train.csv", train.to_csv(index=False))
    hits = table.iteration[table[target.column].map(target.met).astype(bool)]
    summary = {
        "status": "completed",
        "task": cfg.task.name,
        "optimizer": overrides[1].split("=", 1)[1],
        "schedule": "constant",
        "seed": int(record["random_seed"]),
        "iterations": len(losses),
        "batch_size": int(record["batch_size"]),
        "device": "tensorflow",
        "device_name": "DeepOBS_Baselines' machines (not published)",
        "target": target.as_dict(),
        "iterations_run": len(losses),
        "final_test_accuracy": float(table.accuracy.iloc[-1]) if table.accuracy.notna().any() else None,
        "final_test_loss": float(table.loss.iloc[-1]),
        "reached_target_at": int(hits.iloc[0]) if len(hits) else None,
        "final_train_loss": float(losses[-1]),
        "eval_every": int(table.iteration.iloc[0]),
    }
    write_text_atomic(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    config = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(config, folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    write_choices(folder / ".hydra", OmegaConf.to_container(cfg.hydra.runtime.choices))


def _nearest(names: list[str], rate: float) -> str:
    """The grid point (as optbench names it) closest on the log scale to a rate DeepOBS ran."""
    return min(names, key=lambda name: abs(math.log(float(name)) - math.log(rate)))


def _not_deepobs(checkout: Path, problem: str, tf_name: str, expected: str) -> str:
    return (
        f"{checkout / problem / tf_name} is not laid out as {REPOSITORY} publishes it (expected {expected}): give a "
        "checkout of that repository."
    )


def convert(checkout: Path, commit: str, root: Path = BASELINES) -> list[Path]:
    """Write suite=deepobs's baselines from a DeepOBS_Baselines checkout; the folders written."""
    suite = shipped_suite("deepobs")
    written = []
    for tf_name, optimizer in OPTIMIZERS.items():
        target_dir = root / suite.name / folder_name(optimizer)
        staging = staging_for(target_dir)
        tasks, dates = {}, []
        for problem in PROBLEMS:
            task = suite.task(problem)
            files = sorted((checkout / problem / tf_name).glob("*/*.json"))
            records = [(path, json.loads(path.read_text())) for path in files]
            if not records:
                raise OptbenchError(_not_deepobs(checkout, problem, tf_name, "its run files, */random_seed__*.json"))
            dates += [path.stem.split("__")[-1] for path, _ in records]
            steps_per_epoch = len(records[0][1]["minibatch_train_losses"]) // int(records[0][1]["num_epochs"])
            [(key, spec)] = task.params.items()
            grid = replace(parse_dimension(key, spec), digits=task.digits)
            names = grid.grid(task.trials)
            seeds = sorted(task.seed_list())
            stage_one = {
                _nearest(names, record["learning_rate"]): record
                for _, record in records
                if record["random_seed"] == task.tuning_seed
            }
            reran = {r["learning_rate"] for _, r in records if r["random_seed"] != task.tuning_seed}
            if len(stage_one) != task.trials or len(reran) != 1:
                raise OptbenchError(
                    _not_deepobs(
                        checkout, problem, tf_name, f"{task.trials} rates on seed {task.tuning_seed} and one rate rerun"
                    )
                )
            cfg = compose(f"task={problem}", f"optimizer={optimizer}")
            target = Target.from_config(cfg.task.target)
            points = [{key: name} for name in names]
            scores = [_score(stage_one[n], evaluations(stage_one[n], steps_per_epoch), target, problem) for n in names]
            dirs = [f"{problem}/tuning/{i}" for i in range(len(names))]
            rows = tuning_rows(
                f"optimizer={optimizer}", points, scores, dirs, task.tuning_seed, task.select, task.split
            )
            chosen = _nearest(names, next(iter(reran)))
            for row, name in zip(rows, names):
                row["chosen"] = name == chosen  # DeepOBS's own choice (its best final test value on seed 42)
            (staging / problem).mkdir(parents=True)
            write_text_atomic(staging / problem / TUNING_CSV, pd.DataFrame(rows).to_csv(index=False))
            runs = sorted(
                (r for _, r in records if _nearest(names, r["learning_rate"]) == chosen), key=lambda r: r["random_seed"]
            )
            if [r["random_seed"] for r in runs] != seeds:
                raise OptbenchError(_not_deepobs(checkout, problem, tf_name, f"the rerun rate on seeds {seeds}"))
            for n, record in enumerate(runs):
                overrides = [
                    f"task={problem}",
                    f"optimizer={optimizer}",
                    f"{key}={chosen}",
                    f"seed={record['random_seed']}",
                ]
                run_cfg = compose(*overrides)
                _write_run(staging / problem / str(n), record, evaluations(record, steps_per_epoch), overrides, run_cfg)
            tasks[problem] = {"protocol": task.protocol(), "overrides": list(task.overrides)}
        provenance = {
            "format": FORMAT,
            "id": f"DeepOBS_Baselines ({REPOSITORY}@{commit[:7]}), TensorFlow",
            "suite": suite.name,
            "optimizer": optimizer,
            "optimizer_class": f"tf.train.{tf_name}",
            "source": f"https://github.com/{REPOSITORY}, commit {commit}: DeepOBS 1.1's published baselines",
            "libraries": {"tensorflow": "1.x (DeepOBS 1.1)"},
            "device": "not published",
            "device_name": "not published",
            "date": f"{min(dates)[:10]} .. {max(dates)[:10]}",
            "command": f"python -m optbench.bench.deepobs_baselines <checkout of {REPOSITORY} at {commit[:7]}>",
            "tasks": tasks,
        }
        publish(staging, target_dir, provenance)
        written.append(target_dir)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: python -m optbench.bench.deepobs_baselines CHECKOUT COMMIT  (a checkout of {REPOSITORY})")
    try:
        folders = convert(Path(sys.argv[1]), sys.argv[2])
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    for folder in folders:
        print(f"baseline written to {folder}")
