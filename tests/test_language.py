"""The language-model task (shakespeare_char): nanoGPT's model, the text's parts, batches, evaluation,
the optimizer families on a transformer, Muon's split and the bad-file messages."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_cfg, run
from omegaconf import OmegaConf

from optbench.config.compose import compose
from optbench.data.corpus import encode, load_corpus
from optbench.errors import OptbenchError
from optbench.job.loop import evaluate
from optbench.model.gpt import GPT
from optbench.optim.build import build_optimizer, protocol_of
from optbench.rundir.writer import SUMMARY_JSON
from optbench.sweeps.vectorized.grouping import solo_reason
from optbench.tasks import build_task

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"
# A transformer small enough for tests: one block, 16 wide, context 16.
TINY = (
    "task=shakespeare_char",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=16",
    "model.block_size=16",
    "batch_size=4",
)


def tiny_task(*overrides: str):
    """The task with the tiny model, its text loaded on the CPU."""
    task = build_task(make_cfg(*TINY, *overrides))
    task.setup(torch.device("cpu"))
    return task


def test_the_model_is_nanogpts():
    # nanoGPT's model.py (karpathy/nanoGPT 3adf61e) with torch.manual_seed(1337), GPTConfig(block_size=64,
    # vocab_size=65, n_layer=2, n_head=4, n_embd=64, dropout=0, bias=True): cross-entropy 4.179487705230713
    # on these tokens; its shakespeare_char size has 10,770,816 parameters (10.67M without wpe, as it prints).
    torch.manual_seed(1337)
    model = GPT(65, block_size=64, n_layer=2, n_head=4, n_embd=64).eval()
    generator = torch.Generator().manual_seed(0)
    idx, targets = torch.randint(65, (3, 17), generator=generator), torch.randint(65, (3, 17), generator=generator)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(idx).reshape(-1, 65), targets.reshape(-1))
    assert loss.item() == pytest.approx(4.179487705230713, rel=1e-6)
    big = GPT(65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)
    assert sum(p.numel() for p in big.parameters()) == 10_770_816
    assert big.lm_head.weight is big.transformer.wte.weight  # weight tying
    c_proj = big.transformer.h[0].mlp.c_proj.weight
    assert c_proj.std().item() == pytest.approx(0.02 / 12**0.5, rel=0.05)  # GPT-2's scaled residual init


def test_the_attention_is_causal():
    torch.manual_seed(0)
    model = GPT(65, block_size=16, n_layer=2, n_head=2, n_embd=16).eval()
    tokens = torch.randint(65, (2, 16))
    with torch.no_grad():
        before = model(tokens)
        for t in range(15):
            changed = tokens.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % 65
            after = model(changed)
            assert torch.equal(after[:, : t + 1], before[:, : t + 1]), f"position {t} saw the future"
            assert not torch.equal(after[:, t + 1], before[:, t + 1])


def test_the_parts_are_contiguous_disjoint_and_cover_the_text():
    corpus = load_corpus(make_cfg("task=shakespeare_char").dataset)
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (1_003_854, 55_770, 55_770)  # train: nanoGPT's
    assert len(corpus.vocabulary) == 65
    text = gzip.decompress(
        (
            Path(__file__).resolve().parents[1] / "optbench" / "resources" / "tinyshakespeare" / "input.txt.gz"
        ).read_bytes()
    ).decode()
    assert corpus.decode(torch.cat([corpus.train, corpus.valid, corpus.test])) == text
    assert corpus.decode(corpus.train[:14]) == "First Citizen:"


def test_any_utf8_text_encodes_to_its_characters_places_in_the_sorted_vocabulary():
    text = "Thé quick ✓ fox — 日本, 🦊!\nthe end"
    vocabulary = "".join(sorted(set(text)))
    ids = encode(text, vocabulary)
    assert ids.dtype == torch.int64 and ids.tolist() == [vocabulary.index(ch) for ch in text]
    assert encode("", "").tolist() == []


def test_minibatches_are_seeded_windows_of_the_training_part():
    task = tiny_task()
    draws = []
    for dropout_draws in (0, 1000):  # what dropout takes from torch's generator between steps never moves them
        torch.manual_seed(3)
        batches = task.batches(4)
        draws.append(torch.stack([next(batches) for _ in range(5) if torch.rand(dropout_draws) is not None]))
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == (5, 4, 17)
    torch.manual_seed(3)  # without dropout, the windows are the draws of torch's own generator (nanoGPT's get_batch)
    starts = torch.randint(len(task.corpus.train) - 16, (4,))
    assert torch.equal(draws[0][0], task.corpus.train[starts.unsqueeze(1) + torch.arange(17)])
    train = task.corpus.train
    for window in draws[0].reshape(-1, 17):  # each window is a stretch of the training part
        starts = (train[: len(train) - 16].unfold(0, 17, 1) == window).all(dim=1).nonzero()
        assert len(starts) >= 1


def test_evaluation_is_deterministic_and_covers_the_part():
    task = tiny_task("model.dropout=0.5")
    windows = task.eval_windows("valid")
    assert windows.shape == ((55_770 - 16 + 15) // 16, 17)  # side by side, each predicting 16 characters
    assert torch.equal(windows[:, 1:].reshape(-1), task.corpus.valid[1 : 1 + 16 * len(windows)])
    torch.manual_seed(0)
    model = task.build_model()
    cfg = make_cfg(*TINY, "optimizer=adamw")
    optimizer = build_optimizer(cfg.optimizer, model, "adamw")
    protocol = protocol_of(cfg.optimizer, "adamw")
    results = [evaluate(model, task, optimizer, protocol, split) for split in ("valid", "valid", "test")]
    assert results[0] == results[1]  # dropout is off in evaluations
    assert results[0] != results[2]
    assert 0 <= results[0].accuracy <= 1 and results[0].loss == pytest.approx(4.17, abs=0.1)  # ~ln 65 at init


@pytest.mark.parametrize("optimizer", ["adamw", "muon", "schedulefree_adamw", "lbfgs"])
def test_each_optimizer_family_trains_the_transformer(tmp_path, optimizer):
    # plain, Muon's split (two optimizers), schedule-free (train/eval) and closure (LBFGS)
    summary = run(tmp_path, *TINY, f"optimizer={optimizer}", "iterations=4", "eval_every=2", "validation=true")
    assert summary["status"] == "completed", summary
    assert summary["dataset"] == "shakespeare_char" and summary["model"] == "gpt"
    assert summary["model_parameters"] == sum(p.numel() for p in GPT(65, 16, 1, 2, 16).parameters())
    train, test, valid = (pd.read_csv(tmp_path / f"{name}.csv") for name in ("train", "test", "valid"))
    assert train.iteration.tolist() == [1, 2, 3, 4] and train.accuracy.between(0, 1).all()
    assert test.iteration.tolist() == [2, 4] == valid.iteration.tolist()
    assert summary["final_test_loss"] == test.loss.iloc[-1] and summary["final_valid_loss"] == valid.loss.iloc[-1]
    assert json.loads((tmp_path / SUMMARY_JSON).read_text())["status"] == "completed"


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    cfg = compose("task=shakespeare_char", "optimizer=muon")
    model = GPT(65)
    optimizer = build_optimizer(cfg.optimizer, model, "muon")
    names = {id(p): n for n, p in model.named_parameters()}
    placed = {
        type(o).__name__: [names[id(p)] for g in o.param_groups for p in g["params"]] for o in optimizer.optimizers
    }
    assert set(placed) == {"Muon", "AdamW"}  # one AdamW for biases, norms and embeddings
    suffixes = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    assert sorted(placed["Muon"]) == sorted(f"transformer.h.{i}.{s}" for i in range(2) for s in suffixes)
    assert {
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.ln_f.weight",
        "transformer.h.0.attn.c_attn.bias",
    } <= set(placed["AdamW"])
    assert sorted(placed["Muon"] + placed["AdamW"]) == sorted(names.values())
    adamw = next(o for o in optimizer.optimizers if type(o).__name__ == "AdamW")
    assert {g["lr"] for g in adamw.param_groups} == {0.001}


def test_no_weight_decay_on_norms_and_biases():
    # the README's example: every 1-D tensor (LayerNorm weights and biases, Linear biases) without decay
    cfg = compose(
        "task=shakespeare_char",
        "optimizer=adamw",
        "optimizer.weight_decay=0.1",
        "+optimizer.param_groups=[{ndim:1,weight_decay:0.0}]",
    )
    model = GPT(65)
    optimizer = build_optimizer(cfg.optimizer, model, "adamw")
    decay = {g["weight_decay"]: {p.ndim for p in g["params"]} for g in optimizer.param_groups}
    assert decay == {0.1: {2}, 0.0: {1}}


def test_the_vectorized_launcher_says_why_it_runs_these_alone():
    reason = solo_reason(compose("task=shakespeare_char", "optimizer=adamw"))
    assert "task=shakespeare_char" in reason and "transformer" in reason


@pytest.mark.parametrize("damage", ["missing", "truncated", "other"])
def test_a_bad_text_file_is_one_clear_message(tmp_path, damage):
    folder = tmp_path / "text"
    if damage != "missing":
        folder.mkdir()
        original = load_corpus(make_cfg("task=shakespeare_char").dataset)
        text = original.decode(original.train[:5000])
        (folder / "input.txt").write_text(text if damage == "truncated" else text.upper())
    with pytest.raises(OptbenchError, match="dataset.root" if damage == "missing" else "dataset.sha256") as error:
        load_corpus(make_cfg("task=shakespeare_char", f"dataset.root={folder}").dataset)
    assert "dataset.root=null" in str(error.value)
    if damage == "other":  # a text of the user's own, on purpose
        corpus = load_corpus(make_cfg("task=shakespeare_char", f"dataset.root={folder}", "dataset.sha256=null").dataset)
        assert len(corpus.train) == 4500 and corpus.vocabulary == "".join(sorted(set(text.upper())))


@pytest.mark.slow
def test_a_bad_text_file_from_the_command_line(tmp_path):
    (tmp_path / "input.txt").write_text("too short")
    result = subprocess.run(
        [
            Path(sys.executable).with_name("optbench"),
            "task=shakespeare_char",
            f"dataset.root={tmp_path}",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "does not match dataset.sha256" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not SHARED_TEXT.exists(), reason="../shared/data/tinyshakespeare is not beside the checkout")
def test_dataset_root_reads_another_copy():
    bundled = load_corpus(make_cfg("task=shakespeare_char").dataset)
    shared = load_corpus(make_cfg("task=shakespeare_char", f"dataset.root={SHARED_TEXT.parent}").dataset)
    assert torch.equal(bundled.test, shared.test) and bundled.vocabulary == shared.vocabulary


def test_the_presets_are_nanogpts_sizes():
    cpu, gpu = make_cfg("task=shakespeare_char"), make_cfg("task=shakespeare_char_gpu")
    assert (cpu.model.n_layer, cpu.model.n_embd, cpu.model.block_size, cpu.batch_size) == (2, 64, 64, 32)
    assert OmegaConf.to_container(gpu.model) == {
        **OmegaConf.to_container(cpu.model),
        "n_layer": 6,
        "n_head": 6,
        "n_embd": 384,
        "block_size": 256,
        "dropout": 0.2,
        "bias": False,  # nanoGPT's train.py default (the recipe itself: tests/test_nanogpt.py)
    }
    assert (gpu.batch_size, gpu.iterations, gpu.task.name) == (64, 5000, "shakespeare_char_gpu")
