"""Which cluster job a run is: the ids a scheduler that started the process gave it."""

from __future__ import annotations

import os


def slurm_job_id() -> str | None:
    """The SLURM job this process runs in, as squeue and scancel name it (`ARRAY_TASK` for a task of a job array,
    which submitit's launcher submits), or None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None
