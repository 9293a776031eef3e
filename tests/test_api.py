"""The Python API: optbench.run / sweep / report, as a notebook uses them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import assert_same_metrics, run

import optbench


def test_run_gives_the_clis_numbers_and_files(tmp_path):
    """optbench.run composes and checks as the CLI does and writes the same files (with .hydra/ for reports)."""
    result = optbench.run(
        "optimizer=adam", "iterations=40", "eval_every=20", "device=cpu", "progress=false", out_dir=tmp_path / "api"
    )
    run(tmp_path / "job", "optimizer=adam", "iterations=40", "eval_every=20", "device=cpu")
    for name in ("train.csv", "test.csv"):
        assert_same_metrics(tmp_path / "api" / name, tmp_path / "job" / name, name)
    assert result.summary["status"] == "completed" and result.summary["optimizer"] == "adam"
    assert len(result.train) == 40 and result.test.iteration.tolist() == [20, 40] and result.valid is None
    assert {p.name for p in (tmp_path / "api" / ".hydra").iterdir()} == {"config.yaml", "overrides.yaml", "hydra.yaml"}
    assert "<table" in result._repr_html_() and "adam" in result._repr_html_()
    with open(tmp_path / "api" / "train.csv", "a") as torn:  # a row cut short, as a killed process leaves
        torn.write("41,0.5")
    with pytest.warns(UserWarning, match="train.csv damaged from row 41: kept 40 rows"):
        assert len(result.train) == 40


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("optimizer=nosuch",), "Could not find 'optimizer/nosuch'"),
        (("iterations=0",), "iterations=0 must be a positive whole number"),
        (("iterations=10", "epochs=1"), "Both iterations=... and epochs=... were given"),
    ],
)
def test_run_raises_the_clis_messages(tmp_path, overrides, message):
    with pytest.raises(optbench.OptbenchError, match=message.replace("(", r"\(").replace(".", r"\.")):
        optbench.run(*overrides, "device=cpu", out_dir=tmp_path)


def test_report_displays_inline_and_saves(tmp_path):
    """optbench.report(...) is the API's function, also once the report package (optbench.reporting) is loaded."""
    optbench.run(
        "task=rosenbrock",
        "optimizer=adam",
        "iterations=30",
        "eval_every=10",
        "device=cpu",
        "progress=false",
        out_dir=tmp_path / "run",
    )
    view = optbench.report(tmp_path / "run")
    assert optbench.report is optbench.api.report and optbench.reporting.build.build_report  # both names work
    assert view.out_dir == tmp_path / "run" / "report" and view.figures
    shown = view._repr_html_()
    assert shown.count("<img") == len(view.figures) and "data:image/png;base64," in shown and "<table" in shown
    saved = view.save(tmp_path / "shared")
    assert saved.read_text() == (view.out_dir / "report.html").read_text()
    with pytest.raises(optbench.OptbenchError, match="needs at least one run"):
        optbench.report()


@pytest.mark.slow
def test_sweep_runs_the_command_line_and_returns_its_runs(tmp_path, capsys):
    done = optbench.sweep(
        "task=rosenbrock",
        "optimizer=sgd,adam",
        "optimizer.lr=0.001",
        "iterations=20",
        "eval_every=10",
        "device=cpu",
        "auto_report=false",
        sweep_dir=tmp_path / "sweep",
        quiet=True,
    )
    assert [r.summary["optimizer"] for r in done.results] == ["sgd", "adam"]
    assert done.table.status.tolist() == ["completed"] * 2 and "<table" in done._repr_html_()
    assert capsys.readouterr().out == ""  # quiet
    with pytest.raises(optbench.OptbenchError, match="Could not find 'optimizer/nosuch'"):
        optbench.sweep("optimizer=nosuch,adam", sweep_dir=tmp_path / "bad", quiet=True)


def test_python_dash_m_optbench_is_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "optbench", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == f"optbench {optbench.__version__}"


def test_plain_reprs_stay_short(tmp_path):
    result = optbench.run(
        "task=rosenbrock",
        "optimizer=adam",
        "iterations=10",
        "eval_every=10",
        "device=cpu",
        "progress=false",
        out_dir=tmp_path / "run",
    )
    assert (
        repr(result) == f"Result('{tmp_path / 'run'}', status='completed', task='rosenbrock', optimizer='adam', seed=0)"
    )
    view = optbench.report(tmp_path / "run")
    assert repr(view).startswith(f"Report('{tmp_path / 'run' / 'report'}', 1 runs, ") and len(repr(view)) < 200
