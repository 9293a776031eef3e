"""The language-model workload is nanoGPT's training run: its schedule, optimizer, clipping, estimate_loss and
recipes, checked against nanoGPT's own code (tests/nanogpt, karpathy/nanoGPT 3adf61e) and the numbers it produced."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_cfg
from omegaconf import OmegaConf

from optbench.config.validation import check_config
from optbench.errors import OptbenchError
from optbench.job.job import run_job
from optbench.job.loop import Gradients, take_step
from optbench.model.gpt import GPT
from optbench.optim.build import Protocol, build_optimizer
from optbench.optim.schedule import build_schedule
from optbench.runtime.device import cpu_kind
from optbench.tasks import build_task

NANOGPT = Path(__file__).resolve().parent / "nanogpt"
sys.path.insert(0, str(NANOGPT))
import runner  # noqa: E402  (tests/nanogpt/runner.py: runs nanoGPT's train.py)

FIXTURE = json.loads(runner.FIXTURE.read_text())
# The fixture's numbers hold bit for bit where the same CPU kernels ran them (the CPU's family and model, its vector
# unit, torch's threads); elsewhere float32 sums round in another order, ~1e-7 per operation, and tens of steps of
# AdamW carry that to ~1e-6 relative in the loss: 1e-4 bounds it with room.
SAME_KERNELS = FIXTURE["machine"]["cpu_kind"] == cpu_kind() and FIXTURE["machine"]["threads"] == torch.get_num_threads()
RTOL = 0 if SAME_KERNELS else 1e-4
RECIPE = ("task=shakespeare_char_nanogpt_cpu", "optimizer=adamw_nanogpt", "schedule=nanogpt", "device=cpu")


def nanogpt_globals() -> dict:
    """train.py's settings as its CPU recipe sets them: its defaults, then the config file, then the README's flags."""
    tree = ast.parse((NANOGPT / "train.py").read_text())
    settings: dict = {}
    for node in tree.body:  # the `# default config values` block: plain assignments of literals
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                settings[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    exec((NANOGPT / "config" / "train_shakespeare_char.py").read_text(), {}, settings)
    return settings


def nanogpt_get_lr(settings: dict):
    """nanoGPT's own get_lr, taken from its train.py's source and run with `settings` as its globals."""
    tree = ast.parse((NANOGPT / "train.py").read_text())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "get_lr")
    scope = {"math": math, **settings}
    exec(compile(ast.Module([function], []), "train.py", "exec"), scope)
    return scope["get_lr"]


def nanogpt_model_module():
    """nanoGPT's model.py, imported from tests/nanogpt."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", NANOGPT / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schedule_is_nanogpts_get_lr_at_every_step():
    settings = {"learning_rate": 1e-3, "warmup_iters": 100, "lr_decay_iters": 2000, "min_lr": 1e-4}
    get_lr = nanogpt_get_lr(settings)
    cfg = make_cfg(*RECIPE)
    cfg.schedule.lr_decay_iters = 2000
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(cfg.optimizer, model, "adamw_nanogpt")
    scheduler = build_schedule(cfg.schedule, optimizer, 2100, "nanogpt")
    for it in range(2101):  # past lr_decay_iters too, where nanoGPT holds min_lr
        assert [group["lr"] for group in optimizer.param_groups] == [get_lr(it)] * 2, it
        with pytest.warns(UserWarning) if it == 0 else contextlib.nullcontext():  # no optimizer step: no gradients
            scheduler.step()
    # Groups of another lr follow the same formula with their own lr and min_lr scaled alike; null: lr / 10.
    for min_lr, floors in ((1e-4, [1e-4, 1e-5]), (None, [1e-4, 1e-5])):
        groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (1e-3, 1e-4)]
        optimizer = torch.optim.SGD(groups)
        cfg.schedule.min_lr = min_lr
        scheduler = build_schedule(cfg.schedule, optimizer, 10, "nanogpt")
        assert scheduler.min_lrs == pytest.approx(floors, rel=1e-15)


def test_the_optimizer_is_configure_optimizers():
    torch.manual_seed(1337)
    nanogpt = nanogpt_model_module()
    theirs_model = nanogpt.GPT(
        nanogpt.GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, bias=False)
    )
    theirs = theirs_model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    mine_model = GPT(65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False)
    cfg = make_cfg(*RECIPE)
    mine = build_optimizer(cfg.optimizer, mine_model, "adamw_nanogpt")
    assert isinstance(mine, torch.optim.AdamW)

    def names(model, group):
        by_id = {id(p): name for name, p in model.named_parameters()}
        return [by_id[id(p)] for p in group["params"]]

    assert len(mine.param_groups) == len(theirs.param_groups) == 2
    for got, expected in zip(mine.param_groups, theirs.param_groups):  # decayed first, in nanoGPT's order
        assert names(mine_model, got) == names(theirs_model, expected)
        assert {k: v for k, v in got.items() if k != "params"} == {k: v for k, v in expected.items() if k != "params"}


def test_the_optimizer_is_fused_only_on_a_cuda_gpu():
    cfg = make_cfg(*RECIPE)
    assert build_optimizer(cfg.optimizer, torch.nn.Linear(2, 2), "adamw_nanogpt").defaults["fused"] is None
    if torch.cuda.is_available():
        on_gpu = build_optimizer(cfg.optimizer, torch.nn.Linear(2, 2).cuda(), "adamw_nanogpt")
        assert on_gpu.defaults["fused"] is True


@pytest.mark.parametrize("preset", ["shakespeare_char_nanogpt_cpu", "shakespeare_char_gpu"])
def test_the_presets_are_nanogpts_recipes_setting_for_setting(preset):
    settings = nanogpt_globals()
    if preset == "shakespeare_char_nanogpt_cpu":  # the README's flags after the config file
        for flag in runner.CPU_RECIPE[1:]:
            key, value = flag.removeprefix("--").split("=")
            settings[key] = ast.literal_eval(value) if value not in ("cpu",) else value
    cfg = make_cfg(f"task={preset}")
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd) == (
        settings["n_layer"],
        settings["n_head"],
        settings["n_embd"],
    )
    assert (cfg.model.block_size, cfg.model.dropout, cfg.model.bias) == (
        settings["block_size"],
        settings["dropout"],
        settings["bias"],
    )
    assert (cfg.batch_size, cfg.eval_every, cfg.task.eval_iters) == (
        settings["batch_size"],
        settings["eval_interval"],
        settings["eval_iters"],
    )
    assert cfg.iterations == settings["max_iters"] and settings["gradient_accumulation_steps"] == 1
    assert (cfg.grad_clip, cfg.seed) == (settings["grad_clip"], 1337)  # train.py: torch.manual_seed(1337 + 0)
    optimizer, schedule = cfg.optimizer, cfg.schedule
    assert (optimizer.lr, list(optimizer.betas), optimizer.weight_decay) == (
        settings["learning_rate"],
        [settings["beta1"], settings["beta2"]],
        settings["weight_decay"],
    )
    assert (schedule.warmup_iters, schedule.min_lr) == (settings["warmup_iters"], settings["min_lr"])
    assert (schedule.lr_decay_iters or cfg.iterations) == settings["lr_decay_iters"] and settings["decay_lr"]
    assert list(cfg.dataset.splits) == [0.9, 0.0, 0.1]  # prepare.py: train.bin the first 90%, val.bin the rest


def test_the_splits_are_nanogpts_train_and_val_bins(tmp_path):
    task = build_task(make_cfg(*RECIPE))
    task.setup(torch.device("cpu"))
    workdir = runner.prepare(tmp_path / "nanogpt", runner.bundled_text())
    import numpy as np

    for part, name in ((task.corpus.train, "train.bin"), (task.corpus.test, "val.bin")):
        their = np.fromfile(workdir / "data" / "shakespeare_char" / name, dtype=np.uint16).astype(np.int64)
        assert torch.equal(part, torch.from_numpy(their)), name
    assert len(task.corpus.valid) == 0


def test_the_short_recipe_gives_the_losses_nanogpt_logged(tmp_path):
    # The first 8 iterations of nanoGPT's CPU recipe (--max_iters=8 --lr_decay_iters=2000 is the same run cut
    # short): every minibatch loss, and the estimates of iteration 0, against the fixture of nanoGPT's own run.
    summary = run_job(make_cfg(*RECIPE, "iterations=8", "schedule.lr_decay_iters=2000"), tmp_path)
    assert summary["status"] == "completed"
    train = pd.read_csv(tmp_path / "train.csv")
    assert list(train.columns) == ["iteration", "loss", "accuracy", "lr", "grad_norm"]
    assert train.loss.tolist() == pytest.approx(FIXTURE["train_loss"][:8], rel=RTOL, abs=0)
    test, train_eval = (pd.read_csv(tmp_path / name) for name in ("test.csv", "train_eval.csv"))
    assert test.iteration.tolist() == train_eval.iteration.tolist() == [0, 8]  # from iteration 0, as nanoGPT
    their_train, their_val = FIXTURE["evaluations"]["0"]
    assert (train_eval.loss[0], test.loss[0]) == pytest.approx((their_train, their_val), rel=RTOL, abs=0)
    assert (train.grad_norm > 1.0).any()  # the norm before clipping: early steps are clipped


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_every_number_equals_nanogpts_own_run_here_bit_for_bit(tmp_path, dropout):
    # nanoGPT's train.py and optbench on this machine, same threads: 60 iterations, estimates every 20. With dropout
    # on a CPU its masks come from the same global generator, between the batches: the order must match too.
    nano = runner.run(
        runner.prepare(tmp_path / "nanogpt", runner.bundled_text()),
        "--max_iters=60",
        "--eval_interval=20",
        f"--dropout={dropout}",
    )
    mine = tmp_path / "optbench"
    overrides = ("iterations=60", "eval_every=20", "schedule.lr_decay_iters=2000", f"model.dropout={dropout}")
    run_job(make_cfg(*RECIPE, *overrides), mine)
    train = pd.read_csv(mine / "train.csv")
    assert train.loss.tolist() == nano.train_loss[:60]  # nanoGPT's 61st step (iter 60) follows its last evaluation
    test, train_eval = (pd.read_csv(mine / name) for name in ("test.csv", "train_eval.csv"))
    assert {i: (t, v) for i, t, v in zip(test.iteration, train_eval.loss, test.loss)} == nano.evaluations


@pytest.mark.slow
def test_the_whole_cpu_recipe_against_nanogpts_run(tmp_path):
    # nanoGPT's README: "a loss of only 1.88" after 2000 iterations; its run that made the fixture: every iteration.
    summary = run_job(make_cfg(*RECIPE), tmp_path)
    train, test = (pd.read_csv(tmp_path / name) for name in ("train.csv", "test.csv"))
    final = FIXTURE["evaluations"]["2000"][1]
    if SAME_KERNELS:
        assert train.loss.tolist() == FIXTURE["train_loss"][:2000]
        assert test.loss.tolist() == [FIXTURE["evaluations"][str(i)][1] for i in test.iteration]
    else:  # rounding differences grow over 2000 steps; the run must still land where nanoGPT's did
        assert train.loss[:50].tolist() == pytest.approx(FIXTURE["train_loss"][:50], rel=RTOL)
        assert summary["final_test_loss"] == pytest.approx(final, abs=0.02)
    assert summary["final_test_loss"] == pytest.approx(1.88, abs=0.02)


def test_clipping_bounds_the_step_and_records_the_norm_before_it():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    before = [p.detach().clone() for p in model.parameters()]
    inputs, labels = torch.randn(8, 5) * 10, torch.randint(3, (8,))

    class Tiny:
        def loss(self, model, batch):
            from optbench.tasks import StepLoss

            return StepLoss(torch.nn.functional.cross_entropy(model(batch[0]), batch[1]), 8)

    expected = torch.autograd.grad(torch.nn.functional.cross_entropy(model(inputs), labels), list(model.parameters()))
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in expected]))
    assert norm > 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = take_step(model, optimizer, Tiny(), (inputs, labels), Protocol(), Gradients(clip=0.5))
    assert step.grad_norm.item() == pytest.approx(norm.item(), rel=1e-6)  # before clipping
    moved = torch.linalg.vector_norm(torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)]))
    assert moved.item() == pytest.approx(0.5, rel=1e-5)  # SGD lr=1: the step is the clipped gradient


@pytest.mark.parametrize("value", ["-1", "0", "abc", "nan", "inf", "[1]"])
def test_a_bad_grad_clip_is_one_message(value):
    with pytest.raises(OptbenchError, match=r"grad_clip=.* must be a number above 0, or null \(no clipping\)"):
        check_config(make_cfg(f"grad_clip={value}"))


@pytest.mark.slow  # the fast tier runs the command line's exit status 2 with batch_size=0 (test_validation.py)
def test_a_bad_grad_clip_on_the_command_line_exits_2_without_a_traceback(tmp_path):
    done = subprocess.run(
        [Path(sys.executable).with_name("optbench"), "grad_clip=-0.5", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "grad_clip=-0.5 must be a number above 0" in done.stderr
    assert not (tmp_path / "train.csv").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("schedule.warmup_iters=100", "schedule.lr_decay_iters=100"), "equals schedule.warmup_iters=100"),
        (("iterations=100",), "schedule.lr_decay_iters (100, the run) equals schedule.warmup_iters=100"),
        (("optimizer.lr=1e-5",), "schedule.min_lr=0.0001 is above optimizer.lr=1e-05"),
        (("schedule.min_lr=-1",), "schedule.min_lr=-1 must be a number >= 0"),
        (("task.eval_iters=0",), "task.eval_iters=0 must be a positive whole number"),
        (("validation=true",), "validation=true evaluates the validation part"),
        (("dataset.splits=[1.0,0.0,0.0]",), "train and test above 0"),
    ],
)
def test_bad_recipe_settings_are_one_message(overrides, message):
    with pytest.raises(OptbenchError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        check_config(make_cfg(*RECIPE, *overrides))


def test_clipping_off_changes_nothing_and_writes_no_column(tmp_path):
    # grad_clip=null is the default: the runs before clipping existed, bit for bit (and their fingerprint).
    from optbench.config.fingerprint import config_fingerprint

    cfg = make_cfg("iterations=20", "eval_every=10")
    plain = run_job(cfg, tmp_path / "plain")
    huge = run_job(make_cfg("iterations=20", "eval_every=10", "grad_clip=1e9"), tmp_path / "huge")
    a, b = (pd.read_csv(tmp_path / name / "train.csv") for name in ("plain", "huge"))
    assert "grad_norm" not in a.columns and a.loss.tolist() == b.loss.tolist()  # a scale of exactly 1 leaves the bits
    assert plain["final_test_loss"] == huge["final_test_loss"]
    OmegaConf.set_struct(cfg, False)
    del cfg["grad_clip"]  # a config from before the setting existed
    assert config_fingerprint(cfg) == plain["config_fingerprint"]
