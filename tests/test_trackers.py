"""Experiment trackers (logger=tensorboard|mlflow|wandb) and `optbench export`, read back with each
library's own reader: the numbers must be train.csv's and test.csv's, a sweep must be grouped, and a
failing tracker must never stop training."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_cfg, run

from optbench.config.fingerprint import config_fingerprint
from optbench.config.validation import check_config
from optbench.errors import OptbenchError
from optbench.logger import build_tracker, distinguishing, flatten

SHORT = ("iterations=300", "eval_every=100")


def csv(path: Path) -> pd.DataFrame:
    """A metrics CSV (pandas parses floats round-trip: exactly the numbers written)."""
    return pd.read_csv(path)


def sweep(tmp_path: Path, *overrides: str) -> Path:
    """Run `optbench -m OVERRIDES` into tmp_path/sweep and return the sweep dir."""
    out = tmp_path / "sweep"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optbench",
            "-m",
            *overrides,
            "progress=false",
            "auto_report=false",
            "device=cpu",
            f"hydra.sweep.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


# --- the config group and its errors ---------------------------------------------------------------------------


def test_no_tracker_by_default_and_the_logger_never_changes_the_fingerprint():
    assert make_cfg().logger.kind == "none" and build_tracker(make_cfg().logger) is None
    assert config_fingerprint(make_cfg("logger=mlflow")) == config_fingerprint(make_cfg())  # resume=true still skips


def test_unknown_tracker_and_missing_package_say_what_to_do(monkeypatch):
    with pytest.raises(OptbenchError, match="logger.kind='comet' is not a tracker optbench knows.*logger=wandb"):
        check_config(make_cfg("logger=none", "logger.kind=comet"))
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(OptbenchError, match=r"logger=wandb needs the wandb package.*pip install 'optbench\[wandb\]'"):
        build_tracker(make_cfg("logger=wandb").logger)


def test_missing_tracker_package_fails_the_run_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(OptbenchError, match="optbench\\[mlflow\\]"):
        run(tmp_path, "logger=mlflow", *SHORT)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and not (tmp_path / "train.csv").exists()  # rejected before any file but this


def test_flatten_and_names():
    assert flatten({"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": 0}) == {
        "optimizer.lr": 0.1,
        "optimizer.betas": [0.9, 0.99],
        "seed": 0,
    }
    assert (
        distinguishing(
            [
                "optimizer=adam",
                "seed=1",
                "progress=false",
                "logger=wandb",
                "logger.mode=online",
                "hydra.sweep.dir=x",
                "threads=1",
            ]
        )
        == "optimizer=adam,seed=1"
    )


# --- a failing tracker ------------------------------------------------------------------------------------------


def test_tracker_failing_mid_run_warns_once_and_training_goes_on(tmp_path, caplog):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    calls = {"n": 0}
    original = SummaryWriter.add_scalar

    def disk_full(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 150:  # part-way through the first flush's rows
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SummaryWriter, "add_scalar", disk_full)
        with caplog.at_level(logging.WARNING, logger="optbench.logger"):
            summary = run(tmp_path / "run", "logger=tensorboard", *SHORT)
    warnings = [r for r in caplog.records if r.name == "optbench.logger"]
    assert summary["status"] == "completed" and len(csv(tmp_path / "run" / "train.csv")) == 300
    assert len(warnings) == 1 and "No space left on device" in warnings[0].getMessage()
    assert "Training goes on without it" in warnings[0].getMessage()
    assert calls["n"] == 151  # quiet after the failure: nothing more was tried


@pytest.mark.slow  # MLflow's bounded retries take seconds
def test_tracker_server_gone_does_not_stop_the_run(tmp_path, caplog, monkeypatch):
    pytest.importorskip("mlflow")
    # without the user's MLFLOW_HTTP_* settings optbench's own bound on MLflow's retries applies; setenv first makes
    # monkeypatch remove what optbench sets when the test ends
    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with caplog.at_level(logging.WARNING, logger="optbench.logger"):
        summary = run(tmp_path, "logger=mlflow", "logger.tracking_uri=http://127.0.0.1:9", *SHORT)
    assert summary["status"] == "completed" and len(csv(tmp_path / "test.csv")) == 3
    assert [r.getMessage() for r in caplog.records if r.name == "optbench.logger"][0].startswith(
        "logger=mlflow failed while starting its run"
    )
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # not MLflow's 7 retries with 2^k s backoff


# --- each tracker, read back with its own reader ----------------------------------------------------------------


def tensorboard_scalars(folder: Path) -> dict[str, pd.Series]:
    """Every scalar tag of one TensorBoard run folder, by step, read with TensorBoard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: pd.Series({e.step: e.value for e in events.Scalars(tag)}) for tag in events.Tags()["scalars"]}


def assert_logged(scalars: dict[str, pd.Series], run_dir: Path, rtol: float) -> None:
    """The tracker holds train.csv's loss/accuracy/lr and test.csv's (and valid.csv's) loss/accuracy."""
    train, test = csv(run_dir / "train.csv"), csv(run_dir / "test.csv")
    splits = [("train", train, ("loss", "accuracy", "lr")), ("test", test, ("loss", "accuracy"))]
    if (run_dir / "valid.csv").exists():
        splits.append(("valid", csv(run_dir / "valid.csv"), ("loss", "accuracy")))
    for split, frame, columns in splits:
        for column in columns:
            logged = scalars[f"{split}/{column}"].sort_index()
            assert logged.index.tolist() == frame.iteration.tolist(), f"{split}/{column} steps"
            assert logged.to_numpy() == pytest.approx(frame[column].to_numpy(), rel=rtol), f"{split}/{column}"


@pytest.mark.slow
def test_tensorboard_sweep_one_folder_per_job_same_numbers_as_the_csvs(tmp_path):
    pytest.importorskip("tensorboard")
    out = sweep(tmp_path, "logger=tensorboard", "seed=0,1", "validation=true", *SHORT)
    folders = sorted((out / "tensorboard").iterdir())
    assert [f.name for f in folders] == [
        "0_seed=0,validation=True,iterations=300,eval_every=100,device=cpu",
        "1_seed=1,validation=True,iterations=300,eval_every=100,device=cpu",
    ]
    for folder, job in zip(folders, ("0", "1")):
        scalars = tensorboard_scalars(folder)
        assert_logged(scalars, out / job, rtol=1e-6)  # TensorBoard keeps scalars as float32
        summary = json.loads((out / job / "summary.json").read_text())
        assert scalars["summary/final_test_accuracy"].iloc[-1] == pytest.approx(summary["final_test_accuracy"])


@pytest.mark.slow
def test_vectorised_sweep_logs_every_member(tmp_path):
    pytest.importorskip("tensorboard")
    out = sweep(
        tmp_path,
        "hydra/launcher=vectorized",
        "logger=tensorboard",
        "optimizer=sgd,adam",
        "optimizer.lr=0.01",
        "seed=0,1",
        *SHORT,
    )
    folders = sorted((out / "tensorboard").iterdir())
    assert len(folders) == 4
    for folder in folders:
        assert_logged(tensorboard_scalars(folder), out / folder.name.split("_")[0], rtol=1e-6)


@pytest.mark.slow
def test_mlflow_sweep_is_one_experiment_with_the_csvs_numbers(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    out = sweep(tmp_path, "logger=mlflow", "optimizer=sgd,adam", "optimizer.lr=0.01", *SHORT)
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(str(out))
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.run_name"])
    assert [r.info.run_name for r in runs] == [
        f"0_optimizer=sgd,optimizer.lr=0.01,{','.join(SHORT)},device=cpu",
        f"1_optimizer=adam,optimizer.lr=0.01,{','.join(SHORT)},device=cpu",
    ]
    for mlflow_run, job, name in zip(runs, ("0", "1"), ("sgd", "adam")):
        assert mlflow_run.info.status == "FINISHED"
        assert mlflow_run.data.tags["optimizer"] == name and mlflow_run.data.tags["task"] == "mnist_mlp"
        assert mlflow_run.data.tags["seed"] == "0" and mlflow_run.data.tags["sweep"] == str(out)
        assert mlflow_run.data.params["optimizer.lr"] == "0.01" and mlflow_run.data.params["batch_size"] == "100"
        scalars = {
            key: pd.Series({m.step: m.value for m in client.get_metric_history(mlflow_run.info.run_id, key)})
            for key in ("train/loss", "train/accuracy", "train/lr", "test/loss", "test/accuracy")
        }
        assert_logged(scalars, out / job, rtol=0)  # MLflow stores float64: exactly the CSV's numbers
        summary = json.loads((out / job / "summary.json").read_text())
        assert mlflow_run.data.metrics["summary/final_test_accuracy"] == summary["final_test_accuracy"]


def wandb_records(run_file: Path) -> list:
    """The records of a W&B offline run file (`run-ID.wandb`), decoded with W&B's own protobuf schema.

    The file is W&B's header (`:W&B`, 7 bytes) then LevelDB's log format: 32 KiB blocks of chunks, each
    with a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) holding one `Record`.
    """
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(records: list) -> dict[str, pd.Series]:
    """Each logged key's values by step (`_step`), from a run file's history records."""
    history: dict[str, dict[int, float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for key, value in row.items():
                history.setdefault(key, {})[row["_step"]] = value
    return {key: pd.Series(values) for key, values in history.items()}


@pytest.mark.slow
def test_wandb_offline_sweep_is_one_group_with_the_csvs_numbers(tmp_path):
    pytest.importorskip("wandb")
    out = sweep(tmp_path, "logger=wandb", "seed=0,1", "validation=true", *SHORT)
    run_files = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 2
    seen = {}
    for run_file in run_files:
        records = wandb_records(run_file)
        header = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        config = {item.key: json.loads(item.value_json) for item in header.config.update}
        assert header.run_group == str(out) and header.project == "optbench"
        job = header.display_name.split("_")[0]
        assert config["seed"] == int(job) and config["optimizer.lr"] == 0.1
        assert set(header.tags) == {"task=mnist_mlp", "optimizer=sgd", f"seed={job}"}
        assert_logged(wandb_history(records), out / job, rtol=0)
        exits = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
        assert exits == [0]
        seen[job] = header.display_name
    assert sorted(seen) == ["0", "1"]


@pytest.mark.slow
def test_export_replays_finished_runs_into_each_tracker(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    out = sweep(tmp_path, "optimizer=sgd,adam", "optimizer.lr=0.01", "validation=true", *SHORT)
    for kind in ("tensorboard", "mlflow"):
        done = subprocess.run(
            [sys.executable, "-m", "optbench", "export", kind, str(out)], capture_output=True, text=True
        )
        assert done.returncode == 0 and "exported 2 of 2 runs" in done.stdout, done.stderr
    folders = sorted((out / "tensorboard").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert_logged(tensorboard_scalars(folder), out / folder.name.split("_")[0], rtol=1e-6)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(str(out)).experiment_id], order_by=["attributes.run_name"])
    for mlflow_run, job in zip(runs, ("0", "1")):
        scalars = {
            key: pd.Series({m.step: m.value for m in client.get_metric_history(mlflow_run.info.run_id, key)})
            for key in (
                "train/loss",
                "train/accuracy",
                "train/lr",
                "test/loss",
                "test/accuracy",
                "valid/loss",
                "valid/accuracy",
            )
        }
        assert_logged(scalars, out / job, rtol=0)
        assert mlflow_run.info.status == "FINISHED"
    if importlib.util.find_spec("wandb") is not None:  # W&B needs steps in order: a replay interleaves evaluations
        done = subprocess.run(
            [sys.executable, "-m", "optbench", "export", "wandb", str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "WANDB_SILENT": "true"},
        )
        assert done.returncode == 0 and "exported 2 of 2 runs" in done.stdout, done.stderr
        for run_file in sorted((out / "wandb").glob("offline-run-*/run-*.wandb")):
            records = wandb_records(run_file)
            header = next(r.run for r in records if r.WhichOneof("record_type") == "run")
            assert_logged(wandb_history(records), out / header.display_name.split("_")[0], rtol=0)
    wrong = subprocess.run(
        [sys.executable, "-m", "optbench", "export", "mlflow", str(out), "--log-dir", "x"],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2 and "--log-dir is an option of `optbench export tensorboard`" in wrong.stderr


def test_a_tracker_gets_diagnostics_csvs_columns(tmp_path):
    """diagnostics.every: the tracker holds diagnostics.csv's every column at its iterations (`diagnostics/<column>`)."""
    pytest.importorskip("tensorboard")
    from optbench.job.job import run_job

    cfg = make_cfg("optimizer=adam", "iterations=20", "eval_every=10", "diagnostics.every=10", "logger=tensorboard")
    cfg.logger.log_dir = str(tmp_path / "tb")
    run_job(cfg, tmp_path / "run")
    rows = csv(tmp_path / "run" / "diagnostics.csv")
    (folder,) = (tmp_path / "tb").iterdir()
    scalars = tensorboard_scalars(folder)
    for column in rows.columns[1:]:
        logged = scalars[f"diagnostics/{column}"].sort_index()
        assert logged.index.tolist() == rows.iteration.tolist(), column
        assert logged.to_numpy() == pytest.approx(rows[column].to_numpy(), rel=1e-6, nan_ok=True), column
