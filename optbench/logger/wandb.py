"""logger=wandb: a Weights & Biases run per job, offline by default (`wandb sync` uploads it later).

A sweep is a W&B group (its sweep dir); `logger.mode=online` logs live (after `wandb login`).
"""

from __future__ import annotations

from typing import Any

from optbench.logger import RunInfo, Tracker

MODES = ("offline", "online", "disabled")
LOGIN_SECONDS = 30.0


class WandbTracker(Tracker):
    """Config, tags, history keyed by iteration (`_step`), summary, exit code."""

    kind = "wandb"

    def _open(self, info: RunInfo) -> None:
        import wandb

        mode = self.options.get("mode") or "offline"
        if mode not in MODES:
            raise ValueError(f"logger.mode={mode!r} is not one of {', '.join(MODES)}")
        self.run = wandb.init(
            project=self.options.get("project") or "optbench",
            entity=self.options.get("entity"),
            group=info.group,
            name=info.name,
            config=info.params,
            dir=str(self.options.get("dir") or info.root),
            tags=[f"{key}={value}"[:64] for key, value in info.tags.items() if key != "sweep"],
            mode=mode,
            reinit="create_new",  # a vectorised group holds one W&B run per member at once
            # online without credentials, W&B would wait at a login prompt: give up after LOGIN_SECONDS instead
            settings=wandb.Settings(console="off", quiet=True, login_timeout=LOGIN_SECONDS),
        )
        self.last_step = 0

    def _rows(self, iterations: list[int], columns: dict[str, list[float | None]]) -> None:
        for index, iteration in enumerate(iterations):
            row = {key: values[index] for key, values in columns.items() if values[index] is not None}
            self.run.log(row, step=max(iteration, self.last_step))  # W&B steps never go back
            self.last_step = max(iteration, self.last_step)

    def _finish(self, summary: dict[str, Any], metrics: dict[str, float]) -> None:
        self.run.summary.update(
            {**{f"summary/{key}": value for key, value in metrics.items()}, "status": summary.get("status")}
        )
        self.run.finish(exit_code=0 if summary.get("status") == "completed" else 1)
