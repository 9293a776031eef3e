"""Is optbench ready for this GPU? One command, one table.

    python benchmarks/gpu_check.py                          # on a GPU machine: under 8 minutes on one GPU
    python benchmarks/gpu_check.py --device cpu --quick     # the same checks on a CPU, under 2 minutes (CI)

Sections, in order:
- versions: torch, CUDA, cuDNN, the device's name, torch's TF32 defaults and optbench's policy;
- smoke: the optimizer families (sgd, adam, scratch/adam, lbfgs, muon, schedule-free), Lookahead, a
  schedule, and every task preset, a few hundred steps each on the device;
- determinism: the same MLP, CNN and transformer config twice, compared byte for byte;
- CPU vs device: one config on both, the largest relative loss difference and the final-accuracy gap;
- sync audit: a run under `torch.cuda.set_sync_debug_mode("warn")`, warnings counted between
  evaluations (must be 0) and at them;
- vectorised: a group of 8 members against their single runs on the device (the largest difference);
- speed: a default run against the notebook loop on the same device, and vectorised groups of 1, 8, 64
  and 256 members against 256 sequential runs (estimated from the median of a few single runs);
- tests: the pytest suite's device-parametrised tests (`pytest -m device`).

The exit status is 1 when a check fails: a run that crashes, two runs of one config that differ, a host
sync between evaluations, a failing device test. Differences and timings are reported, not judged.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.speed import time_notebook  # noqa: E402
from optbench.config.compose import compose  # noqa: E402
from optbench.config.sources import config_dir  # noqa: E402
from optbench.errors import OptbenchError  # noqa: E402
from optbench.job import job as job_module  # noqa: E402
from optbench.job import loop as trainer  # noqa: E402
from optbench.job.job import run_job  # noqa: E402
from optbench.rundir import recorder  # noqa: E402
from optbench.runtime.device import cpu_name, hardware, numerics, resolve_device  # noqa: E402
from optbench.sweeps.vectorized.engine import run_group  # noqa: E402

FAMILIES = [
    ["optimizer=sgd"],
    ["optimizer=adam"],
    ["optimizer=scratch/adam"],
    ["optimizer=lbfgs"],
    ["optimizer=muon"],
    ["optimizer=schedulefree_adamw"],
    ["optimizer=adam", "lookahead.enabled=true"],
    ["optimizer=sgd", "schedule=warmup_cosine"],
]
DETERMINISM = {
    "MLP": ["task=mnist_mlp", "optimizer=adam"],
    "CNN": ["task=fmnist_2c2d", "dataset=mnist", "optimizer=adam"],  # DeepOBS's 2c2d on the bundled MNIST
    "transformer": ["task=shakespeare_char", "optimizer=adamw"],
}
GROUP_OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adamax"]


@dataclass
class Settings:
    """How long each part runs: the full check on a GPU, or `--quick` (a CPU in CI)."""

    device: str
    smoke_steps: int = 300
    compare_steps: int = 300
    cnn_steps: int = 100
    speed_steps: int = 3000
    group_sizes: tuple[int, ...] = (1, 8, 64, 256)
    singles: int = 3  # single runs timed for the sequential estimate

    @classmethod
    def of(cls, device: str, quick: bool) -> Settings:
        """The full settings, or the quick ones."""
        if not quick:
            return cls(device)
        return cls(
            device, smoke_steps=20, compare_steps=60, cnn_steps=4, speed_steps=200, group_sizes=(1, 8), singles=2
        )


@dataclass
class Row:
    """One line of the table."""

    section: str
    check: str
    result: str
    detail: str = ""
    failed: bool = False


@dataclass
class Table:
    """The check's rows, printed as one Markdown table at the end (progress goes to stderr meanwhile)."""

    rows: list[Row] = field(default_factory=list)

    def add(self, section: str, check: str, result: str, detail: str = "", failed: bool = False) -> None:
        """Add a row and say it on stderr."""
        self.rows.append(Row(section, check, result, detail, failed))
        print(f"[{section}] {check}: {result} {detail}".rstrip(), file=sys.stderr, flush=True)

    def markdown(self) -> str:
        """The table, failures marked."""
        lines = ["| section | check | result | detail |", "| --- | --- | --- | --- |"]
        for row in self.rows:
            result = f"**FAIL** {row.result}" if row.failed else row.result
            lines.append(f"| {row.section} | {row.check} | {result} | {row.detail} |")
        return "\n".join(lines)


def job(out: Path, device: str, *overrides: str) -> dict[str, Any]:
    """Run one job on `device` into `out`; its summary."""
    return run_job(compose("progress=false", "auto_report=false", f"device.type={device}", *overrides), out)


def metrics_text(run_dir: Path) -> str:
    """train.csv and test.csv as text, test.csv without its clock column: what two runs must share byte for byte."""
    test = list(csv.DictReader(io.StringIO((run_dir / "test.csv").read_text())))
    kept = "\n".join(",".join(v for k, v in row.items() if k != "seconds") for row in test)
    return (run_dir / "train.csv").read_text() + "\n" + kept


def column(run_dir: Path, name: str, csv_name: str = "train.csv") -> list[float]:
    """One numeric column of a run's CSV."""
    return [float(row[name]) for row in csv.DictReader(io.StringIO((run_dir / csv_name).read_text()))]


def largest_relative(a: list[float], b: list[float]) -> float:
    """The largest |a - b| / |b| over paired values (inf when their lengths differ)."""
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) / abs(y) if y else abs(x - y) for x, y in zip(a, b)), default=0.0)


def task_names() -> list[str]:
    """Every task preset in configs/task/."""
    return sorted(path.stem for path in Path(config_dir(), "task").glob("*.yaml"))


def versions(table: Table, device: torch.device) -> None:
    """torch, CUDA, cuDNN, the device and the TF32 flags (torch's defaults; optbench's policy)."""
    table.add("versions", "torch", torch.__version__, f"CPU: {cpu_name()}")
    info = hardware(device)
    table.add("versions", "device", info["device_name"], f"{device}")
    table.add(
        "versions",
        "CUDA / cuDNN",
        f"{info['cuda_version']} / {info['cudnn_version']}",
        "built for: "
        + f"{torch.version.cuda} / {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}",
    )
    defaults = (
        f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, cudnn.benchmark={torch.backends.cudnn.benchmark}"
    )
    policy = numerics(compose(f"device.type={device}").device)
    table.add("versions", "TF32 / determinism", f"optbench: {policy}", f"torch's defaults: {defaults}")


def smoke(table: Table, settings: Settings, out: Path) -> None:
    """Each optimizer family and each task, a few hundred steps on the device."""
    steps = [f"iterations={settings.smoke_steps}", f"eval_every={settings.smoke_steps}"]
    cases = [(" ".join(family), ["task=mnist_mlp", *family]) for family in FAMILIES]
    # Each task with Adam at a small lr, which trains every preset (the default SGD lr diverges on some).
    cases += [(f"task={name}", [f"task={name}", "optimizer=adam", "optimizer.lr=0.001"]) for name in task_names()]
    for i, (name, overrides) in enumerate(cases):
        if settings.device == "cpu" and name == "task=shakespeare_char_gpu":
            table.add("smoke", name, "skipped", "the GPU preset (10.8M parameters) is not run on a CPU")
            continue
        started = time.perf_counter()
        try:
            summary = job(out / f"smoke{i}", settings.device, *overrides, *steps)
        except OptbenchError as exc:
            if "Fashion-MNIST" in str(exc):  # data this machine lacks, not a fault of the device path
                table.add("smoke", name, "skipped", f"no Fashion-MNIST here: {str(exc)[:80]}...")
                continue
            table.add("smoke", name, "error", str(exc)[:200], failed=True)
            continue
        except Exception as exc:  # a crash on the device path: the check's finding
            table.add("smoke", name, "crash", f"{type(exc).__name__}: {str(exc)[:200]}", failed=True)
            continue
        loss = summary.get("final_train_loss")
        table.add(
            "smoke",
            name,
            summary["status"],
            f"{summary['iterations_run']} steps, final train loss {loss:.4g}, {time.perf_counter() - started:.1f} s"
            if loss is not None
            else summary.get("error", ""),
            failed=summary["status"] not in ("completed", "diverged"),
        )


def determinism(table: Table, settings: Settings, out: Path) -> None:
    """The same config twice on the device: identical CSVs."""
    for name, overrides in DETERMINISM.items():
        steps = settings.cnn_steps if name == "CNN" else settings.compare_steps
        runs = [out / f"{name}-{i}" for i in range(2)]
        for run_dir in runs:
            job(run_dir, settings.device, *overrides, f"iterations={steps}", f"eval_every={max(1, steps // 2)}")
        same = metrics_text(runs[0]) == metrics_text(runs[1])
        table.add(
            "determinism",
            f"{name} twice ({steps} steps)",
            "identical" if same else "DIFFERENT",
            " ".join(overrides),
            failed=not same,
        )


def cpu_against_device(table: Table, settings: Settings, out: Path) -> None:
    """One MLP config on the CPU and on the device: how far apart their losses and accuracies end."""
    if settings.device == "cpu":
        table.add("CPU vs device", "mnist_mlp adam", "n/a", "the device is the CPU")
        return
    overrides = [
        "task=mnist_mlp",
        "optimizer=adam",
        f"iterations={settings.compare_steps}",
        f"eval_every={settings.compare_steps}",
    ]
    summaries = {where: job(out / f"versus-{where}", where, *overrides) for where in ("cpu", settings.device)}
    loss = largest_relative(column(out / f"versus-{settings.device}", "loss"), column(out / "versus-cpu", "loss"))
    gap = abs(summaries[settings.device]["final_test_accuracy"] - summaries["cpu"]["final_test_accuracy"])
    table.add(
        "CPU vs device",
        f"mnist_mlp adam ({settings.compare_steps} steps)",
        f"largest relative train-loss difference {loss:.2e}",
        f"final test accuracy gap {100 * gap:.2f} pp",
    )


@dataclass
class SyncAudit:
    """Host syncs torch's sync debug mode reported during a run, by phase."""

    between_evaluations: int
    at_evaluations: int
    setup: int
    messages: list[str]


@contextmanager
def _phase(state: dict[str, str], name: str) -> Iterator[None]:
    previous = state["phase"]
    state["phase"] = name
    try:
        yield
    finally:
        state["phase"] = previous


def _in_phase(state: dict[str, str], name: str, function: Callable) -> Callable:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _phase(state, name):
            return function(*args, **kwargs)

    return wrapped


def sync_audit(cfg: Any, out: Path) -> SyncAudit:
    """Run `cfg` (on a CUDA device) with every synchronising CUDA call warned about, and count the
    warnings in three phases: setup (before the first step), steps (between evaluations) and
    evaluations (each one's flush of the recorded steps and its test pass)."""
    state = {"phase": "setup"}
    counts: Counter[str] = Counter()
    messages: list[str] = []

    def note(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if "synchroniz" in str(message):
            counts[state["phase"]] += 1
            if state["phase"] == "steps" and len(messages) < 5:
                messages.append(f"{filename}:{lineno}: {message}")

    patches = [
        mock.patch.object(job_module, "train", _in_phase(state, "steps", job_module.train)),
        mock.patch.object(trainer, "record_evaluations", _in_phase(state, "evaluation", trainer.record_evaluations)),
        mock.patch.object(recorder.Recorder, "flush", _in_phase(state, "evaluation", recorder.Recorder.flush)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = note
        for patch in patches:
            patch.start()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run_job(cfg, out)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            for patch in patches:
                patch.stop()
    return SyncAudit(counts["steps"], counts["evaluation"], counts["setup"], messages)


def audit(table: Table, settings: Settings, out: Path) -> None:
    """Host syncs of a default MLP run and a transformer run, between evaluations and at them."""
    if settings.device == "cpu":
        table.add("sync audit", "run_job", "n/a", "torch's sync debug mode is CUDA's")
        return
    for name, overrides in (
        ("mnist_mlp adam", ["task=mnist_mlp", "optimizer=adam"]),
        ("shakespeare_char adamw", ["task=shakespeare_char", "optimizer=adamw"]),
    ):
        cfg = compose(
            "progress=false",
            f"device.type={settings.device}",
            *overrides,
            f"iterations={settings.compare_steps}",
            f"eval_every={max(1, settings.compare_steps // 3)}",
        )
        found = sync_audit(cfg, out / f"audit-{name.split()[0]}")
        table.add(
            "sync audit",
            name,
            f"{found.between_evaluations} syncs between evaluations",
            f"{found.at_evaluations} at evaluations, {found.setup} in setup. " + " ; ".join(found.messages),
            failed=found.between_evaluations > 0,
        )


def group_cfgs(count: int, steps: int, device: str, extra: tuple[str, ...] = ()) -> list[Any]:
    """`count` MLP jobs: the batched optimizers in turn, over as many seeds as it takes."""
    return [
        compose(
            "progress=false",
            "auto_report=false",
            f"device.type={device}",
            f"iterations={steps}",
            f"eval_every={min(500, steps)}",
            f"optimizer={GROUP_OPTIMIZERS[k % len(GROUP_OPTIMIZERS)]}",
            f"seed={k // len(GROUP_OPTIMIZERS)}",
            *extra,
        )
        for k in range(count)
    ]


def vectorized(table: Table, settings: Settings, out: Path) -> None:
    """8 members as one wide model against their single runs: bitwise on a CPU (one thread), close on a GPU."""
    extra = ("threads=1",) if settings.device == "cpu" else ()  # the CPU's bitwise claim is for one thread
    cfgs = group_cfgs(8, settings.compare_steps, settings.device, extra)
    run_group(cfgs, [out / f"member{k}" for k in range(len(cfgs))])
    losses, gaps = [], []
    for k, cfg in enumerate(cfgs):
        alone = run_job(cfg, out / f"alone{k}")
        losses.append(largest_relative(column(out / f"member{k}", "loss"), column(out / f"alone{k}", "loss")))
        member = column(out / f"member{k}", "accuracy", "test.csv")
        gaps.append(abs(member[-1] - alone["final_test_accuracy"]))
    worst = max(losses)
    detail = f"final test accuracy: largest gap {100 * max(gaps):.2f} pp"
    if settings.device == "cpu":
        table.add(
            "vectorised",
            f"8 members vs single runs ({settings.compare_steps} steps)",
            "bit for bit" if worst == 0 and max(gaps) == 0 else f"DIFFERENT (relative {worst:.2e})",
            detail,
            failed=worst != 0 or max(gaps) != 0,
        )
    else:
        table.add(
            "vectorised",
            f"8 members vs single runs ({settings.compare_steps} steps)",
            f"largest relative train-loss difference {worst:.2e}",
            detail,
        )


def speed(table: Table, settings: Settings, out: Path) -> None:
    """A default run against the notebook loop on the device; vectorised groups against sequential runs."""
    device = resolve_device(settings.device)
    steps = settings.speed_steps
    started = time.perf_counter()
    summary = job(out / "speed-default", settings.device, f"iterations={steps}")
    optbench_seconds = time.perf_counter() - started
    notebook_seconds, notebook_accuracy = time_notebook("sgd", steps, device)
    table.add(
        "speed",
        f"default run vs notebook loop ({steps} steps, sgd)",
        f"{notebook_seconds / optbench_seconds:.1f}x",
        f"optbench {optbench_seconds:.2f} s (training {summary['train_seconds']:.2f} s, warm-up "
        f"{summary['warmup_seconds']:.3f} s), notebook {notebook_seconds:.2f} s; final accuracy "
        f"{100 * summary['final_test_accuracy']:.2f} vs {notebook_accuracy:.2f}",
    )
    singles = []
    for k, cfg in enumerate(group_cfgs(settings.singles, steps, settings.device)):
        started = time.perf_counter()
        run_job(cfg, out / f"single{k}")
        singles.append(time.perf_counter() - started)
    single = statistics.median(singles)
    reference = max(settings.group_sizes)
    table.add(
        "speed",
        f"one single run ({steps} steps)",
        f"{single:.2f} s",
        f"median of {len(singles)}; {reference} sequential runs ~ {reference * single:.0f} s",
    )
    for size in settings.group_sizes:
        cfgs = group_cfgs(size, steps, settings.device)
        started = time.perf_counter()
        run_group(cfgs, [out / f"group{size}-{k}" for k in range(size)])
        seconds = time.perf_counter() - started
        table.add(
            "speed",
            f"vectorised group of {size}",
            f"{size * single / seconds:.1f}x sequential runs",
            f"{seconds:.2f} s for {size} runs ({size / seconds:.1f} runs/s)"
            + ("; goal >= 100x" if size == 256 else ""),
        )


def device_tests(table: Table) -> None:
    """The suite's device-parametrised tests, in a subprocess."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "device", "-q", "-p", "no:cacheprovider", str(REPO / "tests")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    last = (result.stdout.strip().splitlines() or ["no output"])[-1]
    table.add(
        "tests",
        "pytest -m device",
        last.strip("= "),
        f"{time.perf_counter() - started:.0f} s",
        failed=result.returncode != 0,
    )


def main() -> int:
    """Run every section and print the table; 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps and groups of 1 and 8 only (a CPU in CI)")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except OptbenchError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    settings = Settings.of(args.device, args.quick)
    table = Table()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp:
        out = Path(tmp)
        for section in (versions, smoke, determinism, cpu_against_device, audit, vectorized, speed):
            arguments = (table, device) if section is versions else (table, settings, out / section.__name__)
            section(*arguments)
        device_tests(table)
    print(
        f"\n{table.markdown()}\n\n{sum(r.failed for r in table.rows)} failed of {len(table.rows)} rows; "
        f"{time.perf_counter() - started:.0f} s on {hardware(device)['device_name']} ({cpu_name()})."
    )
    return 1 if any(row.failed for row in table.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
