"""The Hydra entry point: `optbench [overrides]` or `python -m optbench.train [overrides]`.

Composes dataset + model + optimizer + device + trainer settings with Hydra and runs one job (or one per
job of a `-m` sweep) through `optbench.job.job`, which writes train.csv, test.csv and summary.json into the
job's output dir. What happens here is only what a process needs: the exit status, SIGTERM, a sweep's
failed job that must not stop the others.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from optbench.config.sources import config_dir
from optbench.errors import OptbenchError
from optbench.job.job import objective, run_job, settle, stop_on_sigterm
from optbench.runtime.threads import runs_apart
from optbench.tasks import task_list

log = logging.getLogger(__name__)

# `optbench --help` lists the task presets found in configs/task/, with their descriptions.
OmegaConf.register_new_resolver("optbench_tasks", task_list, replace=True)
# configs/hydra/launcher/ray.yaml amends the Ray plugin's config of the same name on purpose (object_store_memory
# null, so an address joins a cluster): Hydra's notice that it checks it against the plugin's schema is not news.
warnings.filterwarnings("ignore", message="\n'hydra/launcher/ray' is validated against ConfigStore schema")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: one training job; returns its `objective` (for sweepers)."""
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with stop_on_sigterm():
            if (previous := settle(cfg, out_dir)) is not None:
                return objective(previous)
            summary = run_job(cfg, out_dir)
    except OptbenchError as exc:
        log.error("%s", exc)
        if sweeping:
            return None  # recorded as failed in summary.json; the other jobs of the sweep go on
        sys.exit(2)
    except Exception:
        log.exception("run failed; details are in %s/summary.json", out_dir)
        if sweeping:
            return None
        raise
    log.info("%s: results in %s", summary["status"], out_dir)
    if summary["status"] == "interrupted":
        if sweeping and runs_apart(HydraConfig.get().launcher):
            # A scheduler stopped this job alone (scancel, a time limit, a killed worker): its launcher gets a
            # result, so the sweep goes on, and says at its end which jobs to redo (resume=true).
            log.warning("interrupted by %s: the sweep's other jobs go on", summary.get("interrupted_by"))
            return None
        raise KeyboardInterrupt  # stop a sweep too; the finished runs keep their outputs
    return objective(summary)


def entry() -> None:
    """Run the Hydra app; Ctrl-C or SIGTERM ends with one line and exit status 130, no traceback."""
    try:
        main()
    except KeyboardInterrupt:
        print(
            "optbench: interrupted; every completed iteration is saved in the run's CSVs "
            "(summary.json says 'interrupted').",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    entry()
