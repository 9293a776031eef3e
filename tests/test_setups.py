"""The notebooks' other setups: lab initialisation, epochs, normalisation, the thermometer problem."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import make_cfg, run
from test_cli import SHORT, cli

from optbench.config.validation import check_config
from optbench.errors import OptbenchError
from optbench.model import MLP, build_model


def test_lab_initialisation_statistics():
    torch.manual_seed(0)
    model = MLP(784, 10, [100, 100], init="lab")
    for layer in (m for m in model if isinstance(m, torch.nn.Linear)):
        assert torch.count_nonzero(layer.bias) == 0
        expected_std = (1.0 / layer.in_features) ** 0.5
        assert layer.weight.std().item() == pytest.approx(expected_std, rel=0.1)
        assert abs(layer.weight.mean().item()) < 0.2 * expected_std


def test_lab_init_from_the_config_differs_from_default():
    torch.manual_seed(0)
    lab = build_model(make_cfg("model.hidden=[100,100]", "model.init=lab").model, 784, 10)
    torch.manual_seed(0)
    default = build_model(make_cfg("model.hidden=[100,100]").model, 784, 10)
    assert not torch.equal(lab[0].weight, default[0].weight)
    with pytest.raises(OptbenchError, match="model.init='xavier' is not known"):
        check_config(make_cfg("model.init=xavier"))


def test_epochs_replace_iterations(tmp_path):
    summary = run(tmp_path, "epochs=1", "batch_size=1000", "eval_every=20")
    train = pd.read_csv(tmp_path / "train.csv")
    assert summary["iterations"] == summary["iterations_run"] == len(train) == 60  # 60000 / 1000


def test_epochs_with_a_partial_last_batch(tmp_path):
    summary = run(tmp_path, "epochs=1", "batch_size=7000", "eval_every=100")
    assert summary["iterations_run"] == 9  # ceil(60000 / 7000), as DataLoader(drop_last=False)


@pytest.mark.slow
def test_iterations_and_epochs_together_is_an_error(tmp_path):
    result = cli("iterations=100", "epochs=2", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert "Both iterations=... and epochs=... were given" in result.stderr
    assert "Traceback" not in result.stderr


def test_mnist_normalisation_option(tmp_path):
    summary = run(tmp_path, "dataset.normalize=true", "iterations=50", "eval_every=50")
    plain = run(tmp_path / "plain", "iterations=50", "eval_every=50")
    assert summary["status"] == "completed" and summary["final_train_loss"] != plain["final_train_loss"]


def test_thermometer_reproduces_the_lecture(tmp_path):
    """SGD lr=1e-2 from w=1, b=0, 5000 full-batch steps: loss 2.9276, w 5.367, b -17.30."""
    summary = run(tmp_path, "task=thermometer", "optimizer.lr=1e-2")
    train = pd.read_csv(tmp_path / "train.csv")
    assert train.loss.iloc[0] == pytest.approx(80.364342, abs=1e-4)  # the lecture's first printed loss
    assert train.loss.iloc[-1] == pytest.approx(2.927648, abs=1e-4)
    assert summary["final_parameters"]["weight"][0][0] == pytest.approx(5.3671, abs=1e-3)
    assert summary["final_parameters"]["bias"][0] == pytest.approx(-17.3012, abs=1e-3)
    assert summary["task"] == "thermometer" and summary["kind"] == "regression"
    assert summary["iterations"] == 5000 and summary["final_test_accuracy"] is None
    assert summary["target"] == {"metric": "test_loss", "threshold": 3.0, "mode": "min"}
    test = pd.read_csv(tmp_path / "test.csv")
    assert summary["reached_target_at"] == test.iteration[test.loss <= 3.0].iloc[0]
    assert train.accuracy.isna().all()  # accuracy is not defined: the column is left empty


def test_thermometer_unscaled_inputs_diverge(tmp_path):
    """The lecture's first attempt (no input scaling) blows up; optbench stops it as diverged."""
    summary = run(tmp_path, "task=thermometer", "dataset.input_scale=1.0", "optimizer.lr=1e-2", "iterations=100")
    assert summary["status"] == "diverged"


@pytest.mark.slow
def test_report_of_regression_runs(tmp_path):
    sweep = tmp_path / "sweep"
    result = cli(
        "-m",
        "task=thermometer",
        "optimizer.lr=1e-2,1e-3",
        "iterations=300",
        "eval_every=100",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(sweep / "report" / "summary.csv")
    assert table.label.tolist() == ["sgd lr=0.01", "sgd lr=0.001"]  # no accuracy: sorted by loss
    assert table.status.tolist() == ["completed", "completed"] and table.final_test_acc.isna().all()


@pytest.mark.slow
def test_report_pairs_scratch_with_torch(tmp_path):
    sweep = tmp_path / "sweep"
    result = cli(
        "-m", "optimizer=sgd,scratch/sgd,momentum,scratch/momentum", *SHORT, f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (sweep / "report" / "pair_sgd.png").exists() and (sweep / "report" / "pair_momentum.png").exists()
    table = pd.read_csv(sweep / "report" / "summary.csv").set_index("label")
    assert table.loc["scratch/sgd", "final_test_acc"] == pytest.approx(table.loc["sgd", "final_test_acc"], abs=0.05)
