"""Reliability: every bad input gets one clear message; no fault loses results (real CLI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from test_cli import OPTBENCH, SHORT, cli, summary

from optbench.config.sources import config_dir
from optbench.data.datasets import load_dataset
from optbench.errors import OptbenchError

# (overrides, exit status, text the message must contain)
BAD_INPUTS = [
    (["optimizer=nosuch"], 1, "Available options in 'optimizer'"),
    (["dataset=nosuch"], 1, "Available options in 'dataset'"),
    (["model=nosuch"], 1, "Available options in 'model'"),
    (["device=nosuch"], 1, "Available options in 'device'"),
    (["task=nosuch"], 1, "Available options in 'task'"),
    (["optimizer.lrr=1"], 1, "Key 'lrr' is not in struct"),
    (["optimizer.lr=fast"], 2, "optimizer.lr='fast' must be a number"),
    (["optimizer=adam", "optimizer.betas=fast"], 2, "optimizer.betas='fast' must be a list of 2 numbers"),
    (["optimizer=nesterov", "optimizer.nesterov=3"], 2, "optimizer.nesterov=3 must be true or false"),
    (["iterations=1.5"], 2, "iterations=1.5 must be a positive whole number"),
    (["optimizer.lr=-1"], 2, "Invalid learning rate: -1"),
    (["optimizer=momentum", "optimizer.momentum=1.5"], 2, "optimizer.momentum=1.5 is outside [0, 1)"),
    (
        ["optimizer=adam", "optimizer.betas=[0.9,1.5]"],
        2,
        "optimizer.betas=[0.9, 1.5] must be a list of 2 numbers, each in [0, 1)",
    ),
    (["iterations=0"], 2, "iterations=0 must be a positive whole number"),
    (["batch_size=-3"], 2, "batch_size=-3 must be a positive whole number"),
    (["eval_every=0"], 2, "eval_every=0 must be a positive whole number"),
    (["batch_size=60001"], 2, "batch_size=60001 is larger than the training split (60000"),
    (["model.hidden=[]"], 2, "model.hidden=[] is not a list of positive layer widths"),
    (["model.hidden=[100,0]"], 2, "model.hidden=[100, 0] is not a list of positive layer widths"),
    (["threads=0"], 2, "threads=0 must be a positive whole number"),
    (["divergence_factor=0.5"], 2, "divergence_factor=0.5 must be a number above 1"),
    (["model._target_=nosuch.Model"], 2, "The model could not be built"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,status,message", BAD_INPUTS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_input_is_one_clear_message(tmp_path, overrides, status, message):
    result = cli(*SHORT, *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    assert message in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_unwritable_data_root_from_the_cli(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli(*SHORT, f"dataset.root={blocker / 'data'}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"dataset.root={blocker / 'data'} cannot be created" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_eval_every_beyond_iterations_warns_and_evaluates_at_the_end(tmp_path):
    result = cli("iterations=20", "eval_every=500", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "eval_every=500 is larger than iterations=20" in result.stdout + result.stderr
    assert pd.read_csv(tmp_path / "test.csv").iteration.tolist() == [20]


def test_damaged_fashion_mnist_names_the_folder(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 10)  # a header cut short
    preset = OmegaConf.load(Path(config_dir()) / "dataset" / "fashion_mnist.yaml")
    cfg = OmegaConf.merge(preset, dict(root=str(tmp_path), normalize=False, mean=0.0, std=1.0))
    with pytest.raises(OptbenchError, match=f"{raw}.*damaged.*Delete"):
        load_dataset(cfg)


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    """Start optbench in the background; its output goes to tmp_path/out.txt (a pipe could fill up)."""
    out = open(tmp_path / "out.txt", "w")
    # As in a terminal: SIGINT at its default, even when the tests themselves were started in the
    # background (a non-interactive shell starts background jobs with SIGINT ignored, and a child
    # inherits that, so Python would never raise KeyboardInterrupt in it).
    return subprocess.Popen(
        [str(OPTBENCH), *args, "device=cpu", "progress=false"],
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_rows(csv: Path, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if csv.exists() and len(csv.read_text().splitlines()) > rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"{csv} never reached {rows} rows")


def assert_whole_rows(run: Path) -> pd.DataFrame:
    train = pd.read_csv(run / "train.csv")
    assert train.iteration.tolist() == list(range(1, len(train) + 1))
    assert train.notna().all().all()
    return train


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_keeps_every_completed_iteration(tmp_path, sig):
    process = start(tmp_path, "iterations=1000000", "eval_every=200", f"hydra.run.dir={tmp_path / 'run'}")
    wait_for_rows(tmp_path / "run" / "test.csv", 1)
    process.send_signal(sig)
    process.wait(timeout=120)
    output = (tmp_path / "out.txt").read_text()
    assert process.returncode == 130
    assert "optbench: interrupted" in output and "Traceback" not in output
    result = summary(tmp_path / "run")
    train = assert_whole_rows(tmp_path / "run")
    assert result["status"] == "interrupted"
    assert len(train) == result["iterations_run"] >= 200


@pytest.mark.slow
def test_kill_9_leaves_parseable_files_up_to_the_last_flush(tmp_path):
    process = start(tmp_path, "iterations=1000000", "eval_every=100", f"hydra.run.dir={tmp_path / 'run'}")
    wait_for_rows(tmp_path / "run" / "test.csv", 2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    train = assert_whole_rows(tmp_path / "run")
    assert len(train) >= 200 and len(train) % 100 == 0  # flushed at each evaluation
    assert summary(tmp_path / "run")["status"] == "running"
    report = cli("report", str(tmp_path / "run"), "-o", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert pd.read_csv(tmp_path / "report" / "summary.csv").status[0] == "incomplete"


@pytest.mark.slow
def test_interrupted_sweep_keeps_finished_runs(tmp_path):
    process = start(tmp_path, "-m", "iterations=30,1000000", "eval_every=10", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    tmp_path = tmp_path / "sweep"
    wait_for_rows(tmp_path / "1" / "test.csv", 1)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    assert process.returncode == 130
    assert summary(tmp_path / "0")["status"] == "completed"
    assert len(pd.read_csv(tmp_path / "0" / "train.csv")) == 30
    assert summary(tmp_path / "1")["status"] == "interrupted"


@pytest.mark.slow
def test_crash_in_one_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    result = cli(
        "-m", "model._target_=optbench.model.MLP,nosuch.Model", *SHORT, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert summary(tmp_path / "0")["status"] == "completed"
    failed = summary(tmp_path / "1")
    assert failed["status"] == "failed" and "nosuch.Model" in failed["error"]


@pytest.mark.slow
def test_resume_skips_completed_runs_and_redoes_the_rest(tmp_path):
    sweep = ["-m", "optimizer=sgd,adam", *SHORT, f"hydra.sweep.dir={tmp_path}", "auto_report=false"]
    assert cli(*sweep, cwd=tmp_path).returncode == 0
    done = (tmp_path / "0" / "train.csv").stat().st_mtime_ns
    broken = summary(tmp_path / "1") | {"status": "failed"}
    (tmp_path / "1" / "summary.json").write_text(json.dumps(broken))
    result = cli(*sweep, "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "0" / "train.csv").stat().st_mtime_ns == done  # skipped
    assert summary(tmp_path / "1")["status"] == "completed"  # redone
    assert "already holds a completed run" in result.stdout + result.stderr


@pytest.mark.slow
def test_resume_reruns_when_the_config_changed(tmp_path):
    base = [*SHORT, f"hydra.run.dir={tmp_path}"]
    assert cli(*base, cwd=tmp_path).returncode == 0
    first = summary(tmp_path)
    result = cli(*base, "optimizer.lr=0.05", "resume=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "already holds" not in result.stdout + result.stderr
    second = summary(tmp_path)
    assert second["status"] == "completed"
    assert second["config_fingerprint"] != first["config_fingerprint"]
    assert second["started_at"] >= first["finished_at"]
