"""logger=tensorboard: event files through torch's own `SummaryWriter` (needs the `tensorboard` package).

One subfolder per job under `<sweep dir>/tensorboard/` (or `<run dir>/tensorboard/`), so
`tensorboard --logdir <sweep dir>/tensorboard` shows a sweep's runs side by side; the config and the
final numbers go to the HPARAMS tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optbench.logger import RunInfo, Tracker

HPARAM_TYPES = (int, float, str, bool)
HPARAM_KEYS = ("batch_size", "iterations", "epochs")


class TensorBoardTracker(Tracker):
    """Scalars per iteration (`train/loss`, `test/accuracy`, ...), config and tags as text, hparams at the end."""

    kind = "tensorboard"

    def log_dir(self, info: RunInfo) -> Path:
        """Where this job's event file goes: `<logger.log_dir or root/tensorboard>/<job name>`."""
        base = Path(self.options["log_dir"]) if self.options.get("log_dir") else info.root / "tensorboard"
        return base / info.name

    def _open(self, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir(info)))
        self.writer.add_text("tags", "  \n".join(f"**{key}**: {value}" for key, value in info.tags.items()), 0)
        self.writer.add_text("config", "  \n".join(f"`{key}` = `{value}`" for key, value in info.params.items()), 0)

    def _rows(self, iterations: list[int], columns: dict[str, list[float | None]]) -> None:
        for tag, values in columns.items():
            for iteration, value in zip(iterations, values):
                if value is not None:
                    self.writer.add_scalar(tag, value, iteration)
        self.writer.flush()  # each flush of the CSVs reaches the event file too

    def _finish(self, summary: dict[str, Any], metrics: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        # The HPARAMS tab compares jobs: the optimizer's and schedule's settings and the run's size, not every
        # key of the config (that is in the TEXT tab)
        chosen = {
            **self.info.tags,
            **{
                key: value
                for key, value in self.info.params.items()
                if key in HPARAM_KEYS
                or key.startswith(("optimizer.", "schedule."))
                and not key.split(".")[-1].startswith("_")
                and ".protocol." not in key
            },
        }
        params = {
            key: value if isinstance(value, HPARAM_TYPES) else str(value)
            for key, value in chosen.items()
            if key != "sweep"
        }
        params["status"] = str(summary.get("status"))
        final = {f"summary/{key}": value for key, value in metrics.items()}
        for summary_proto in hparams(params, final):  # the HPARAMS tab: one row per job, in this job's own folder
            self.writer.file_writer.add_summary(summary_proto)
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, int(summary.get("iterations_run") or 0))
        self.writer.close()
