"""Modern optimizers and the protocols they need: parameter splits, closures, create_graph, train/eval."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from conftest import make_cfg, run

from optbench.config.validation import check_config
from optbench.errors import OptbenchError
from optbench.job.loop import train
from optbench.model import MLP, Conv2c2d
from optbench.optim.build import Protocol, build_optimizer, protocol_of
from optbench.optim.lookahead import Lookahead
from optbench.optim.multi import MultiOptimizer
from optbench.rundir.recorder import Recorder
from optbench.rundir.writer import RunRecords
from optbench.tasks import build_task

FROM_TORCH = ["muon", "adafactor", "lbfgs"]
FROM_ZOO = {
    "schedulefree_adamw": "schedulefree",
    "schedulefree_sgd": "schedulefree",
    "lion": "pytorch_optimizer",
    "prodigy": "pytorch_optimizer",
    "soap": "pytorch_optimizer",
    "adopt": "pytorch_optimizer",
    "mars": "pytorch_optimizer",
    "ademamix": "pytorch_optimizer",
    "sophiah": "pytorch_optimizer",
}


def needs(package: str):
    return pytest.mark.skipif(
        importlib.util.find_spec(package) is None, reason=f"{package} is not installed: pip install -e '.[zoo]'"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", FROM_TORCH + [pytest.param(n, marks=needs(p)) for n, p in FROM_ZOO.items()])
def test_every_new_optimizer_trains_200_iterations_to_a_finite_loss(tmp_path, name):
    summary = run(tmp_path, f"optimizer={name}", "iterations=200", "eval_every=100", "device=cpu")
    assert summary["status"] == "completed", summary.get("error")
    assert math.isfinite(summary["final_train_loss"]) and summary["final_test_accuracy"] > 0.5


def test_zoo_configs_name_their_extra_and_only_their_protocol():
    for name in FROM_ZOO:
        assert protocol_of(make_cfg(f"optimizer={name}").optimizer, name).extra == "zoo"
    assert protocol_of(make_cfg("optimizer=lbfgs").optimizer, "lbfgs") == Protocol(
        closure=True, lookahead=protocol_of(make_cfg("optimizer=lbfgs").optimizer, "lbfgs").lookahead
    )
    assert protocol_of(make_cfg("optimizer=adam").optimizer, "adam") == Protocol()


@pytest.mark.parametrize("model", [MLP(784, 10, hidden=[100, 50]), Conv2c2d(784, 10)])
def test_muon_gets_every_matrix_and_adamw_every_other_tensor(model):
    optimizer = build_optimizer(make_cfg("optimizer=muon").optimizer, model, "muon")
    assert isinstance(optimizer, MultiOptimizer)
    muon, adamw = optimizer.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    in_muon = {id(p) for group in muon.param_groups for p in group["params"]}
    in_adamw = {id(p) for group in adamw.param_groups for p in group["params"]}
    assert in_muon == {id(p) for p in model.parameters() if p.ndim == 2}
    assert in_adamw == {id(p) for p in model.parameters() if p.ndim != 2}
    assert muon.param_groups[0]["lr"] == 0.02 and adamw.param_groups[0]["lr"] == 0.001
    assert optimizer.param_groups[0] is muon.param_groups[0]  # train.csv's lr column is Muon's


def test_a_schedule_scales_every_part_and_lookahead_wraps_the_split():
    cfg = make_cfg("optimizer=muon", "lookahead.enabled=true")
    optimizer = build_optimizer(cfg.optimizer, MLP(784, 10), "muon", cfg.lookahead)
    assert isinstance(optimizer, Lookahead) and isinstance(optimizer.base, MultiOptimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == [0.02 / 4, 0.001 / 4]


def test_param_groups_by_name_and_dimension():
    cfg = make_cfg(
        "optimizer=adamw", "+optimizer.param_groups=[{names:['*.bias'],weight_decay:0.0},{ndim:2,names:['2.*'],lr:0.5}]"
    )
    model = MLP(784, 10, hidden=[100])
    optimizer = build_optimizer(cfg.optimizer, model, "adamw")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [(sorted(names[id(p)] for p in g["params"]), g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    rest, biases, last = groups
    assert biases[0] == [n for n in sorted(names.values()) if n.endswith(".bias")] and biases[2] == 0.0
    assert rest[1] == 0.001 and rest[2] == 0.01 and last[1] == 0.5 and len(last[0]) == 1
    assert sorted(rest[0] + biases[0] + last[0]) == sorted(names.values())


def test_bad_param_groups_and_protocols_are_one_message():
    with pytest.raises(OptbenchError, match="selects no parameters"):
        build_optimizer(
            make_cfg("optimizer=adam", "+optimizer.param_groups=[{lr:0.1}]").optimizer, MLP(784, 10), "adam"
        )
    with pytest.raises(OptbenchError, match="protocol.closures is not a protocol setting"):
        protocol_of(make_cfg("optimizer=adam", "+optimizer.protocol={closures:true}").optimizer, "adam")
    with pytest.raises(OptbenchError, match="leave no parameter"):
        build_optimizer(
            make_cfg(
                "optimizer=adam", "+optimizer.param_groups=[{ndim:[1,2],optimizer:{_target_:torch.optim.SGD,lr:0.1}}]"
            ).optimizer,
            MLP(784, 10),
            "adam",
        )
    with pytest.raises(
        OptbenchError, match="optimizer=muon: its param_groups leave no parameter of this model to torch.optim.Muon"
    ):  # a 2-D task's point has no matrix
        build_optimizer(make_cfg("optimizer=muon").optimizer, torch.nn.BatchNorm1d(2), "muon")


def test_lookahead_and_schedules_refused_where_they_make_no_sense(tmp_path):
    cfg = make_cfg("optimizer=lbfgs", "lookahead.enabled=true")
    with pytest.raises(OptbenchError, match="lookahead.enabled=true does not work with optimizer=lbfgs: L-BFGS"):
        build_optimizer(cfg.optimizer, MLP(784, 10), "lbfgs", cfg.lookahead)


@needs("schedulefree")
def test_schedule_free_refuses_a_schedule(tmp_path):
    with pytest.raises(OptbenchError, match="schedule=cosine does not apply to optimizer=schedulefree_sgd"):
        run(tmp_path, "optimizer=schedulefree_sgd", "schedule=cosine", "iterations=5")


def test_a_missing_extra_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pytorch_optimizer" else real(name, *a)
    )
    with pytest.raises(OptbenchError) as error:
        check_config(make_cfg("optimizer=lion"))
    assert "optimizer=lion needs the package 'pytorch_optimizer'" in str(error.value)
    assert "pip install -e '.[zoo]'" in str(error.value)


class ModeRecorder(torch.optim.SGD):
    """SGD with schedule-free's train()/eval() switch, recording the mode at every step and evaluation."""

    def __init__(self, params, **kwargs):
        super().__init__(params, lr=0.1)
        self.mode, self.log = "unset", []

    def train(self):
        self.mode = "train"

    def eval(self):
        self.mode = "eval"

    def step(self, closure=None):
        self.log.append(("step", self.mode))
        for group in self.param_groups:  # create_graph leaves a graph on the gradients
            self.log.append(("grad graph", any(p.grad.requires_grad for p in group["params"])))
        return super().step(closure)


def short_training(tmp_path, protocol: Protocol, optimizer_cls=ModeRecorder, iterations: int = 6):
    cfg = make_cfg("task=thermometer", "device=cpu")
    task = build_task(cfg)
    task.setup(torch.device("cpu"))
    model = task.build_model()
    optimizer = optimizer_cls(model.parameters())
    evaluate = task.evaluate
    task.evaluate = lambda m, split="test": (optimizer.log.append(("evaluate", optimizer.mode)), evaluate(m, split))[1]
    recorder = Recorder(RunRecords(tmp_path), capacity=3, has_accuracy=False, divergence_factor=None)
    outcome = train(
        model,
        optimizer,
        task,
        recorder,
        iterations=iterations,
        batch_size=11,
        eval_every=3,
        protocol=protocol,
        progress=False,
    )
    return optimizer, outcome, model


def test_train_eval_optimizers_step_in_train_mode_and_are_evaluated_in_eval_mode(tmp_path):
    optimizer, outcome, _ = short_training(tmp_path, Protocol(train_eval=True))
    modes = [entry for entry in optimizer.log if entry[0] != "grad graph"]
    assert outcome.status == "completed"
    assert modes == [("step", "train")] * 3 + [("evaluate", "eval")] + [("step", "train")] * 3 + [("evaluate", "eval")]
    assert optimizer.mode == "eval"  # the model ends holding the weights it was evaluated with
    plain, _, _ = short_training(tmp_path / "plain", Protocol())
    assert {mode for _, mode in plain.log if mode in ("train", "eval", "unset")} == {"unset"}


def test_create_graph_reaches_backward(tmp_path):
    with_graph, _, _ = short_training(tmp_path, Protocol(create_graph=True))
    without, _, _ = short_training(tmp_path / "plain", Protocol())
    assert all(value for kind, value in with_graph.log if kind == "grad graph")
    assert not any(value for kind, value in without.log if kind == "grad graph")


@needs("schedulefree")
def test_real_schedule_free_is_in_eval_mode_exactly_during_evaluations(tmp_path):
    import schedulefree

    class Recording(schedulefree.SGDScheduleFree):
        """The real optimizer, logging its own train_mode flag at every step and evaluation."""

        def __init__(self, params):
            super().__init__(params, lr=0.01)
            self.log = []

        @property
        def mode(self) -> str:
            return "train" if self.param_groups[0]["train_mode"] else "eval"

        def step(self, closure=None):
            self.log.append(("step", self.mode))
            return super().step(closure)

    optimizer, outcome, _ = short_training(tmp_path, Protocol(train_eval=True), Recording)
    assert outcome.status == "completed"
    assert optimizer.log == [("step", "train")] * 3 + [("evaluate", "eval")] + [("step", "train")] * 3 + [
        ("evaluate", "eval")
    ]
    assert optimizer.mode == "eval"


def test_lbfgs_on_thermometer_reaches_the_least_squares_solution(tmp_path):
    summary = run(tmp_path, "task=thermometer", "optimizer=lbfgs", "iterations=10", "eval_every=5")
    assert summary["status"] == "completed"
    cfg = make_cfg("task=thermometer")
    task = build_task(cfg)
    task.setup(torch.device("cpu"))
    inputs, targets = task.data.train.pixels.double().flatten(), task.data.train.labels.double()
    design = torch.stack([inputs, torch.ones_like(inputs)], dim=1)
    w, b = torch.linalg.lstsq(design, targets.unsqueeze(1)).solution.flatten().tolist()
    final = {name: torch.tensor(value).item() for name, value in summary["final_parameters"].items()}
    assert final["weight"] == pytest.approx(w, rel=1e-4) and final["bias"] == pytest.approx(b, rel=1e-4, abs=1e-4)
