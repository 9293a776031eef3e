"""The shipped baselines rerun to their stored rows (the same kind of machine: bit for bit)."""

from __future__ import annotations

import pandas as pd
import pytest

# A rerun on another CPU kind (another vendor, generation or vector capability) runs other kernels: its rows may
# differ in the last bits, which training carries on. On quadratic_deep and mnist_mlp this stays far below 1e-3.
RERUN_TOLERANCE = 1e-3


@pytest.mark.parametrize(
    ("task", "optimizer"),
    [("quadratic_deep", "adamw"), pytest.param("mnist_mlp", "nesterov", marks=pytest.mark.slow)],
)
def test_a_shipped_baseline_reruns_to_its_stored_rows(tmp_path, task, optimizer):
    """Seed 0 of a shipped cpu baseline, rerun alone from its stored overrides, gives its stored evaluation and
    (thinned) training rows: bit for bit on the CPU kind that made it (the mnist_mlp one was a member of a
    vectorised group), within RERUN_TOLERANCE elsewhere."""
    from conftest import make_cfg

    from optbench.bench.baselines import load_baselines
    from optbench.job.job import run_job
    from optbench.rundir.reader import load_run
    from optbench.runtime.device import cpu_kind

    baselines, _ = load_baselines("cpu")
    baseline = next((b for b in baselines if b.optimizer == optimizer), None)
    assert baseline is not None, f"optbench ships no {optimizer} baseline for suite=cpu"
    stored = load_run(baseline.root / task / "0")
    assert stored.summary["seed"] == 0 and stored.clean
    summary = run_job(make_cfg(*stored.overrides), tmp_path)
    assert summary["status"] == "completed"
    rerun = load_run(tmp_path)
    exact = baseline.provenance["cpu_kind"] == cpu_kind()
    for split in ("test", "valid"):
        mine, theirs = (getattr(run, split).drop(columns="seconds") for run in (rerun, stored))
        pd.testing.assert_frame_equal(mine, theirs, check_exact=exact, rtol=RERUN_TOLERANCE, obj=f"{split}.csv")
    train = rerun.train.set_index("iteration").loc[stored.train.iteration].reset_index()
    pd.testing.assert_frame_equal(train, stored.train, check_exact=exact, rtol=RERUN_TOLERANCE, obj="train.csv")
