"""summary.json's schema: every field a run's summary can hold, in the order it is written, documented once.

summary.json is a contract (scripts and the report read it by key), so a field keeps its name and meaning.
A field is written once it is set; one never set (a rejected run's results, `diverged_at` of a run that did
not diverge) is left out, as it always was. `docs/outputs.md`'s table of fields is this file's
`markdown_table()`, and a test holds the two together: to add a field, add it here with its description,
set it where it is known, and run `python -m optbench.rundir.summary` to print the new table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from optbench.rundir.writer import SUMMARY_JSON

_UNSET: Any = type("Unset", (), {"__repr__": lambda self: "<unset>"})()


def _field(doc: str) -> Any:
    return field(default=_UNSET, metadata={"doc": doc})


@dataclass
class Summary:
    """One run's summary.json, field by field (see the module's docstring)."""

    # What the job is, known before it runs.
    status: str = _field(
        "`running` while it trains, then `completed`, `diverged`, `interrupted` or `failed` (a rejected setting too)"
    )
    task: str = _field("the task preset's name (`mnist_mlp`, `rosenbrock`, …)")
    optimizer: str = _field("the optimizer's config name (`adam`, `scratch/sgd`)")
    schedule: str | None = _field("the schedule's config name (`constant`, `cosine`, …)")
    dataset: str | None = _field("what the task trains on (`mnist`, `fashion_mnist`, `rosenbrock`, …)")
    model: str | None = _field("the model's config name (`mlp`, `gpt`, …; null for a task without one)")
    seed: int = _field("the seed of the model's initialisation and of the minibatch order")
    iterations: int = _field("the training budget in steps (an `epochs` budget converted to steps)")
    batch_size: int | None = _field("examples per step (the whole split when full-batch; null without a dataset)")
    device: str | None = _field("the torch device it ran on (`cpu`, `cuda:0`)")
    torch_version: str = _field("torch's version")
    optbench_version: str = _field("optbench's version")
    started_at: str = _field("when the job started (UTC, ISO 8601)")
    config_fingerprint: str = _field(
        "a hash of every setting that can change the numbers (`resume=true` compares it to skip a finished run)"
    )
    slurm_job_id: str = _field(
        "only for a job SLURM ran (`hydra/launcher=submitit_slurm`): its job id as squeue and scancel name it "
        "(`ARRAY_TASK` for a task of a job array)"
    )
    # Where and how it runs, known once the task is loaded.
    target: dict[str, Any] = _field(
        "the task's target, `{metric, threshold, mode}` (and `strict: true` where the threshold itself misses)"
    )
    device_name: str = _field("the GPU's or the CPU's model name")
    cuda_version: str | None = _field("CUDA's version (null on a CPU)")
    cudnn_version: int | None = _field("cuDNN's version (null on a CPU)")
    numerics: dict[str, bool] = _field("`{deterministic, tf32}`: the device group's numerics policy")
    threads: int = _field("torch's CPU threads")
    eval_every: int = _field("steps between evaluations")
    kind: str = _field("`classification`, `regression` or `function` (accuracy is defined for the first only)")
    model_layers: list[int] = _field("a stack's widths, e.g. `[784, 100, 10]`; empty for other models")
    model_parameters: int = _field("the model's number of parameters")
    # What training gave.
    iterations_run: int = _field("steps taken (fewer than `iterations` when it stopped early)")
    final_test_accuracy: float | None = _field("test accuracy at the last evaluation (null where undefined)")
    best_test_accuracy: float | None = _field("the best test accuracy of any evaluation")
    best_test_iteration: int | None = _field("the iteration of that best evaluation")
    final_train_loss: float | None = _field("the last step's minibatch loss")
    final_test_loss: float | None = _field("test loss at the last evaluation")
    reached_target_at: int | None = _field("the first evaluation's iteration that met the target, or null")
    train_seconds: float = _field(
        "training time after the first (warm-up) step, evaluations left out: test.csv's clock, AlgoPerf's "
        "accumulated submission time"
    )
    warmup_seconds: float | None = _field("the first step's time (one-off costs: kernels, handles, state)")
    iterations_per_second: float | None = _field("the timed steps per training second")
    diverged_at: int = _field("only for a diverged run: the iteration whose loss was NaN, inf or exploding")
    divergence: str = _field(
        "only for a diverged run: why it stopped (a loss that is not finite, or one past `divergence_factor` x the first)"
    )
    interrupted_by: str = _field(
        "only for an interrupted run: the signal that stopped it (`SIGINT`: Ctrl-C; `SIGTERM`: `kill`, or a scheduler's "
        "`scancel`, time limit or preemption)"
    )
    final_valid_loss: float = _field("only with the validation split: validation loss at the last evaluation")
    final_valid_accuracy: float | None = _field("only with the validation split: its accuracy there")
    advice: str = _field(
        "only for a diverged run: what lr to try instead (one that diverged before its first evaluation), and what "
        "the diagnostics saw before it diverged (with `diagnostics.every`)"
    )
    diagnostics: dict[str, Any] = _field(
        "only with `diagnostics.every`: `first_above_threshold`, the first measured step whose sharpness (the "
        "preconditioned one for Adam, AdamW, RMSprop, Adagrad) exceeded its stability threshold (null: none), and "
        "`last`, the last measured row of diagnostics.csv (without the per-parameter columns)"
    )
    final_parameters: dict[str, Any] = _field("only for models of at most 10 parameters: their final values")
    vectorized_members: int = _field(
        "only for a job trained in a vectorised group: the group's size (its `train_seconds` is the group's)"
    )
    error: str = _field("only for a failed run: the error, `Type: message`")
    # When it ended.
    wall_seconds: float = _field("the whole job's time, data loading included")
    finished_at: str = _field("when the job ended (UTC, ISO 8601)")

    def update(self, **values: Any) -> None:
        """Set fields by name; a name that is not a field is a programming error, caught here."""
        for name, value in values.items():
            if name not in FIELDS:
                raise AttributeError(f"summary.json has no field {name!r}: add it to optbench/rundir/summary.py")
            setattr(self, name, value)

    def get(self, name: str, default: Any = None) -> Any:
        """A field's value, or `default` while it is unset."""
        value = getattr(self, name)
        return default if value is _UNSET else value

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name)
        if value is _UNSET:
            raise KeyError(name)
        return value

    def as_dict(self) -> dict[str, Any]:
        """The fields set so far, in the schema's order: what summary.json holds."""
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not _UNSET}


FIELDS = {f.name: f.metadata["doc"] for f in fields(Summary)}


def load_summary(run_dir: Path) -> dict[str, Any]:
    """`run_dir`'s summary.json as written (FileNotFoundError when there is none, ValueError when unreadable)."""
    return json.loads((run_dir / SUMMARY_JSON).read_bytes())


def markdown_table() -> str:
    """docs/outputs.md's table of summary.json's fields, from the schema."""
    rows = [f"| `{name}` | {doc} |" for name, doc in FIELDS.items()]
    return "\n".join(["| field | meaning |", "| --- | --- |", *rows]) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
