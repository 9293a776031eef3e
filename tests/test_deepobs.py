"""DeepOBS's problems as its TensorFlow code ran them, checked against DeepOBS_Baselines' run files,
and the validation split that tuning selects on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from optbench.config.compose import compose
from optbench.config.validation import budget, check_config
from optbench.data.datasets import Dataset, Split
from optbench.data.sampling import Batching, buffer_shuffle
from optbench.job.job import run_job
from optbench.optim import AdamTF
from optbench.tasks import build_task

# quadratic_deep's first test loss (theta = 1, before any step) in every DeepOBS_Baselines run file
# (fsschneider/DeepOBS_Baselines, quadratic_deep/*/*/random_seed__*.json, "test_losses"[0]).
DEEPOBS_INITIAL_TEST_LOSS = 353.44676426478793

# Final test losses (after 100 epochs) of DeepOBS's ten reruns, seeds 42..51, at its tuned settings.
DEEPOBS_FINAL_TEST_LOSS = {
    # GradientDescentOptimizer, lr 1.5848931925e-02
    "deepobs/sgd": [
        87.27961948939732,
        87.52840859549386,
        87.2349112374442,
        87.52428436279297,
        87.51817212785993,
        87.15270342145648,
        87.16471099853516,
        87.48712267194476,
        87.59065682547433,
        87.49415479387555,
    ],
    # MomentumOptimizer, momentum 0.99, use_nesterov False, lr 2.5118864315e-03
    "deepobs/momentum": [
        87.0404074532645,
        87.03777095249721,
        87.02500479561942,
        87.0701174054827,
        87.04070063999721,
        86.99585287911552,
        87.0719964163644,
        87.0713882446289,
        87.06754411969867,
        87.02962711879185,
    ],
    # AdamOptimizer, beta1 0.9, beta2 0.999, epsilon 1e-08, lr 3.9810717055e-02
    "deepobs/adam": [
        87.12013244628906,
        87.14368656703404,
        87.06753322056362,
        87.07570975167411,
        87.1228256225586,
        87.12172372000558,
        87.12100219726562,
        87.12173897879464,
        87.09616088867188,
        87.12828935895648,
    ],
}


def quadratic(*overrides: str):
    cfg = compose("task=quadratic_deep", "device=cpu", *overrides)
    task = build_task(cfg)
    task.setup(torch.device("cpu"))
    return cfg, task


def test_quadratic_deep_is_deepobs_instance_to_float32_precision():
    _, task = quadratic()
    torch.manual_seed(42)
    model = task.build_model()
    task.batches(128)  # evaluations then use whole batches of 128: the first 896 test examples
    with torch.no_grad():
        assert task.evaluate(model).loss == pytest.approx(DEEPOBS_INITIAL_TEST_LOSS, rel=1e-7)
        every = model(task.test).mean().item()  # all 1,000 test examples: a different number
    assert abs(every - DEEPOBS_INITIAL_TEST_LOSS) > 0.1


def test_deepobs_budget_and_epochs():
    cfg, task = quadratic()
    steps = budget(cfg, task.train_size, task.steps_per_epoch)
    assert (steps.iterations, steps.eval_every) == (700, 7)  # 100 epochs of 7 batches, evaluated each epoch
    cfg, task = quadratic("epochs=3")
    assert budget(cfg, task.train_size, task.steps_per_epoch).iterations == 21
    cfg, task = quadratic("iterations=50")  # steps given on the command line replace the preset's epochs
    assert budget(cfg, task.train_size, task.steps_per_epoch).iterations == 50
    fmnist = Batching(drop_last=True, reshuffle=False, shuffle_buffer=20000)
    assert fmnist.steps_per_epoch(60000, 128) == 468 and fmnist.eval_size(10000, 128) == 9984
    assert Batching().steps_per_epoch(60000, 128) == 469 and Batching().eval_size(10000, 128) == 10000


def test_one_order_replayed_every_epoch_as_deepobs_ran():
    _, task = quadratic()
    torch.manual_seed(0)
    batches = task.batches(128)
    epochs = [torch.cat([next(batches) for _ in range(7)]) for _ in range(3)]
    assert all(len(e) == 896 and len(set(e.tolist())) == 896 for e in epochs)  # 104 examples never seen
    assert torch.equal(epochs[0], epochs[1]) and torch.equal(epochs[1], epochs[2])
    torch.manual_seed(1)
    assert not torch.equal(torch.cat([next(task.batches(128)) for _ in range(7)]), epochs[0])  # seeds differ
    _, reshuffled = quadratic("task.batching.reshuffle=true")
    torch.manual_seed(0)
    batches = reshuffled.batches(128)
    first, second = (torch.cat([next(batches) for _ in range(7)]) for _ in range(2))
    assert not torch.equal(first, second)


def test_buffer_shuffle_is_tfs_local_shuffle():
    order = buffer_shuffle(1000, 100, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(1000))
    # output k is one of the first 100 + k inputs: it was in the buffer when it was picked
    assert all(value < 100 + k for k, value in enumerate(order.tolist()))
    assert torch.equal(order, buffer_shuffle(1000, 100, torch.Generator().manual_seed(0)))
    assert torch.equal(
        buffer_shuffle(50, 100, torch.Generator().manual_seed(3)),
        torch.randperm(50, generator=torch.Generator().manual_seed(3)),
    )


def test_bad_batching_is_one_clear_error():
    with pytest.raises(Exception, match="batching=.* is not a valid batching"):
        check_config(compose("task=quadratic_deep", "device=cpu", "+task.batching.shuffle=true"))


def test_adam_tf_is_tensorflows_update():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(6, dtype=torch.float64))
    theta, m, v = param.detach().clone(), torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    optimizer = AdamTF([param], lr=0.1, eps=1e-3)  # a large epsilon, so where it is added shows
    for t in range(1, 6):
        grad = torch.randn(6, dtype=torch.float64) * 1e-3
        param.grad = grad.clone()
        optimizer.step()
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        theta -= 0.1 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (v.sqrt() + 1e-3)  # tf.train.AdamOptimizer
    assert torch.allclose(param.detach(), theta, rtol=1e-12, atol=1e-15)


def test_held_out_images_are_never_trained_on():
    pixels = torch.arange(1000, dtype=torch.uint8).repeat_interleave(4).view(1000, 4)
    data = Dataset("toy", Split(pixels, torch.arange(1000) % 10), Split(pixels[:10], torch.arange(10)), 10)
    held = data.hold_out(200, seed=0)
    train, valid = set(held.train.origin.tolist()), set(held.valid.origin.tolist())
    assert len(train) == 800 and len(valid) == 200 and not train & valid and train | valid == set(range(1000))
    assert torch.equal(held.valid.origin, data.hold_out(200, seed=0).valid.origin)  # fixed by its own seed
    assert torch.equal(held.train.pixels, pixels[held.train.origin])
    with pytest.raises(Exception, match="validation_size=1000 must be"):
        data.hold_out(1000, seed=0)


def test_a_run_with_the_split_on_trains_only_on_training_images(tmp_path):
    cfg = compose(
        "optimizer=sgd",
        "iterations=60",
        "eval_every=30",
        "batch_size=1000",
        "validation=true",
        "dataset.validation_size=10000",
        "device=cpu",
        "progress=false",
    )
    task = build_task(cfg)
    task.setup(torch.device("cpu"))
    assert len(task.data.train) == 50000 and len(task.data.valid) == 10000
    torch.manual_seed(0)
    batches = task.batches(1000)
    trained = torch.cat([task.data.train.origin[next(batches)] for _ in range(60)])  # 1.2 epochs
    assert len(set(trained.tolist())) == 50000
    assert not set(trained.tolist()) & set(task.data.valid.origin.tolist())
    summary = run_job(cfg, tmp_path)
    valid, test = (np.loadtxt(tmp_path / name, delimiter=",", skiprows=1) for name in ("valid.csv", "test.csv"))
    assert summary["status"] == "completed" and valid[:, 0].tolist() == test[:, 0].tolist() == [30, 60]
    assert (tmp_path / "valid.csv").read_text().splitlines()[0] == "iteration,loss,accuracy,seconds"
    assert not np.allclose(valid[:, 1], test[:, 1])  # another set of images


def test_the_default_task_writes_no_validation_split(tmp_path):
    run_job(compose("optimizer=sgd", "iterations=10", "eval_every=10", "device=cpu", "progress=false"), tmp_path)
    assert not (tmp_path / "valid.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", list(DEEPOBS_FINAL_TEST_LOSS))
def test_quadratic_deep_lands_on_deepobs_baselines(tmp_path, optimizer):
    """Ten seeds at DeepOBS's tuned settings end where DeepOBS's ten runs ended, within their spread."""
    finals = [
        run_job(
            compose("task=quadratic_deep", f"optimizer={optimizer}", f"seed={seed}", "device=cpu", "progress=false"),
            tmp_path / str(seed),
        )["final_test_loss"]
        for seed in range(42, 52)
    ]
    theirs = np.array(DEEPOBS_FINAL_TEST_LOSS[optimizer])
    assert abs(np.mean(finals) - theirs.mean()) < theirs.std(ddof=1) + 0.02, (np.mean(finals), theirs.mean())
    assert np.std(finals, ddof=1) < 2 * theirs.std(ddof=1) + 0.02  # before: 0.77 against DeepOBS's 0.025


def test_data_origin_survives_the_move_to_a_device():
    split = Split(torch.zeros(4, 2, dtype=torch.uint8), torch.arange(4)).subset(torch.tensor([3, 1]))
    assert split.to(torch.device("cpu")).origin.tolist() == [3, 1]


def test_eval_every_epoch_needs_a_training_split():
    with pytest.raises(Exception, match="eval_every=epoch needs a task with a training split"):
        cfg = compose("task=rosenbrock", "eval_every=epoch")
        check_config(cfg)


def test_deepobs_run_dir_is_self_describing(tmp_path: Path):
    summary = run_job(
        compose("task=quadratic_deep", "optimizer=deepobs/momentum", "epochs=2", "device=cpu", "progress=false"),
        tmp_path,
    )
    assert summary["iterations"] == 14 and summary["eval_every"] == 7 and summary["iterations_run"] == 14
