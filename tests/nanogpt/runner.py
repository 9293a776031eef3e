"""Run nanoGPT's own train.py (tests/nanogpt, karpathy/nanoGPT 3adf61e) and read its log: the reference numbers of
the language-model workload. `python tests/nanogpt/runner.py` writes tests/fixtures/nanogpt_cpu_recipe.json."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "fixtures" / "nanogpt_cpu_recipe.json"
# nanoGPT's README, "I only have a macbook": its CPU recipe, word for word.
CPU_RECIPE = [
    "config/train_shakespeare_char.py",
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    "--block_size=64",
    "--batch_size=12",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--max_iters=2000",
    "--lr_decay_iters=2000",
    "--dropout=0.0",
]
# Print every digit of the losses (the only change to train.py: its log format).
FULL_PRECISION = {
    "{losses['train']:.4f}": "{losses['train'].item()!r}",
    "{losses['val']:.4f}": "{losses['val'].item()!r}",
    "{lossf:.4f}": "{lossf!r}",
}
ITER = re.compile(r"^iter (\d+): loss (\S+), time")
STEP = re.compile(r"^step (\d+): train loss (\S+), val loss (\S+)$")
PREPARE = (
    "import importlib.util, runpy, sys, types\n"
    "if importlib.util.find_spec('requests') is None:\n"
    "    sys.modules['requests'] = types.ModuleType('requests')  # imported by prepare.py, used only to download\n"
    "runpy.run_path(sys.argv[1], run_name='__main__')\n"
)


@dataclass
class NanoGPTRun:
    """What nanoGPT's train.py logged: the loss of every iteration (`iter i`), and each evaluation's estimates."""

    train_loss: list[float] = field(default_factory=list)  # index i: `iter i`, the minibatch loss before that step
    evaluations: dict[int, tuple[float, float]] = field(default_factory=dict)  # iteration -> (train, val) estimates


def prepare(workdir: Path, text: str) -> Path:
    """A working copy of nanoGPT with `text` as data/shakespeare_char/input.txt, prepared by its prepare.py."""
    shutil.copytree(HERE, workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.bin", "*.pkl"))
    train = (HERE / "train.py").read_text()
    for old, new in FULL_PRECISION.items():
        assert old in train, f"nanoGPT's train.py no longer prints {old}"
        train = train.replace(old, new)
    (workdir / "train.py").write_text(train)
    data = workdir / "data" / "shakespeare_char"
    (data / "input.txt").write_text(text)
    subprocess.run([sys.executable, "-c", PREPARE, str(data / "prepare.py")], check=True, capture_output=True)
    return workdir


def run(workdir: Path, *overrides: str, threads: int | None = None) -> NanoGPTRun:
    """nanoGPT's CPU recipe in a prepared `workdir`, then `overrides` (e.g. --max_iters=40), on `threads` threads."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    done = subprocess.run(
        [sys.executable, "train.py", *CPU_RECIPE, f"--out_dir={workdir / 'out'}", *overrides],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"nanoGPT's train.py failed:\n{done.stderr[-3000:]}")
    result = NanoGPTRun()
    for line in done.stdout.splitlines():
        if match := ITER.match(line):
            assert int(match[1]) == len(result.train_loss)
            result.train_loss.append(float(match[2]))
        elif match := STEP.match(line):
            result.evaluations[int(match[1])] = (float(match[2]), float(match[3]))
    return result


def bundled_text() -> str:
    """The Tiny Shakespeare optbench ships (nanoGPT's input.txt, checksum checked)."""
    from optbench.data.corpus import read_text

    return read_text(None, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")


def main() -> None:
    """Run the whole CPU recipe and write the fixture, with how and where it was made."""
    import tempfile

    import torch

    from optbench.runtime.device import cpu_kind

    with tempfile.TemporaryDirectory() as tmp:
        result = run(prepare(Path(tmp), bundled_text()))
    fixture = {
        "made_by": "python tests/nanogpt/runner.py: karpathy/nanoGPT 3adf61e's train.py " + " ".join(CPU_RECIPE),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_kind": cpu_kind(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        **asdict(result),
    }
    fixture["evaluations"] = {str(k): v for k, v in result.evaluations.items()}
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{FIXTURE}: {len(result.train_loss)} iterations, final {result.evaluations[max(result.evaluations)]}")


if __name__ == "__main__":
    main()
