"""Every setting checked once, before any data are read or any file is written.

`check_config(cfg)` walks the composed job config: each setting against its rule in RULES (type, range,
an example of a good override), then the relations between settings (iterations or epochs, a schedule's
phases within the run, a head count that divides the width, a target the metric can reach), then it
builds the optimizer and the schedule on a stand-in parameter, so torch's and the zoo libraries' own
constructor checks run now too, and it asks for the device. What needs the loaded data (the training
split's size for batch_size and epochs, the held-out validation split, the text's parts) is checked by
the functions at the end of this module, called by the task once it holds the data.

Every message is one paragraph: the key, the value given, what is allowed, and a good override.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from omegaconf import DictConfig, OmegaConf

from optbench.config.compose import group_choices, optimizer_name
from optbench.diagnostics.preconditioner import PRECONDITIONED
from optbench.errors import OptbenchError
from optbench.logger import KINDS, require_tracker
from optbench.model import ACTIVATIONS, INITS
from optbench.optim.build import RESERVED_KEYS, build_optimizer, group_specs, optimizer_class, protocol_of
from optbench.optim.schedule import build_schedule, phase_steps
from optbench.runtime.device import Device
from optbench.tasks.base import MODES, SUPERVISED_LOSSES, TARGET_METRICS
from optbench.tasks.functions import FUNCTIONS

log = logging.getLogger(__name__)

EPOCH = "epoch"  # eval_every=epoch: evaluate after every pass over the training split (DeepOBS)
# The tune sweeper's vocabularies (hydra/sweeper=tune): what its words may be.
SEARCHES = ("grid", "random", "halton")  # every point known before stage 1 starts
ADAPTIVE_SEARCHES = ("tpe", "cmaes", "gp")  # Optuna's samplers: each batch asked from the trials told so far
SELECTIONS = ("time_to_target", "final", "best")
SPLITS = ("validation", "test")  # what stage 1 selects on: valid.csv (held out of training) or test.csv
# Ranges torch.optim does not check itself: momentum >= 1 never converges.
OPTIMIZER_RANGES = {"momentum": (0.0, 1.0), "dampening": (0.0, 1.0)}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """An OmegaConf node as plain Python (lists and dicts), anything else as it is."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


@dataclass(frozen=True)
class Number:
    """A finite number (or whole number) in a range; perhaps null or a word instead."""

    example: str
    whole: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the value must be above `low`, not equal to it
    high_open: bool = False  # the value must be below `high`
    null: str | None = None  # what null means, where null is allowed
    words: tuple[str, ...] = ()  # words allowed instead of a number (eval_every=epoch)
    says: str | None = None  # what is allowed, where the general words read worse

    def accepts(self, value: Any) -> bool:
        """True when `value` is allowed."""
        if value is None:
            return self.null is not None
        if isinstance(value, str):
            return value in self.words
        if not _is_number(value) or not math.isfinite(value) or (self.whole and not isinstance(value, int)):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def allowed(self) -> str:
        """What is allowed, in words: `a positive whole number`, `a number in [0, 1)`."""
        if self.says:
            return self.says
        kind = "whole number" if self.whole else "number"
        low, high = (
            f"{bound:{'d' if self.whole else 'g'}}" if bound is not None else "" for bound in (self.low, self.high)
        )
        if self.low is not None and self.high is not None:
            text = f"a {kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        elif self.whole and self.low == 1:
            text = "a positive whole number"
        elif self.low is not None:
            text = f"a {kind} {'above' if self.low_open else '>='} {low}"
        else:
            text = f"a finite {kind}" if not self.whole else "a whole number"
        text += "".join(f", or {word}" for word in self.words)
        return text + (f", or null ({self.null})" if self.null else "")

    def problem(self, key: str, value: Any) -> str | None:
        """The message for a value that is not allowed, or None."""
        return None if self.accepts(value) else f"{key}={value!r} must be {self.allowed()}, e.g. {self.example}."


@dataclass(frozen=True)
class Numbers:
    """A list of numbers, each allowed by `each`: a fixed length, or at least `least` of them."""

    each: Number
    example: str
    length: int | None = None
    least: int = 1
    verdict: str | None = None  # the message after `key=value`, where the general one reads worse

    def problem(self, key: str, value: Any) -> str | None:
        """The message for a list that is not allowed, or None."""
        value = _plain(value)
        fits = isinstance(value, list) and (len(value) == self.length if self.length else len(value) >= self.least)
        if fits and all(self.each.accepts(v) for v in value):
            return None
        if self.verdict:
            return f"{key}={value!r} {self.verdict}"
        size = f"{self.length}" if self.length else f"{self.least} or more"
        return f"{key}={value!r} must be a list of {size} numbers, each {self.each.allowed()}, e.g. {self.example}."


@dataclass(frozen=True)
class Flag:
    """true or false; perhaps null, where `null` says what it means."""

    example: str
    null: str | None = None

    def problem(self, key: str, value: Any) -> str | None:
        """The message for a value that is not a boolean (or null where allowed), or None."""
        if isinstance(value, bool) or (value is None and self.null is not None):
            return None
        also = f", or null ({self.null})" if self.null is not None else ""
        return f"{key}={value!r} must be true or false{also}, e.g. {self.example}."


@dataclass(frozen=True)
class Choice:
    """One of a few words."""

    options: tuple[str, ...]
    example: str
    what: str = "known"  # `key=value is not <what>`
    use: str | None = None  # the options explained; default: `one of a, b, c`

    def problem(self, key: str, value: Any) -> str | None:
        """The message for a word that is not an option, or None."""
        if isinstance(value, str) and value in self.options:
            return None
        return f"{key}={value!r} is not {self.what}: use {self.use or 'one of ' + ', '.join(self.options)}, e.g. {self.example}."


@dataclass(frozen=True)
class Text:
    """Any text (a name, a path, a URL), or null where `null` says what it means."""

    null: str | None = None

    def problem(self, key: str, value: Any) -> str | None:
        """The message for a value that is not text, or None."""
        if isinstance(value, str) or (value is None and self.null is not None):
            return None
        return f"{key}={value!r} must be text{f', or null ({self.null})' if self.null else ''}."


Rule = Number | Numbers | Flag | Choice | Text
SPLITS_VERDICT = (
    "must be three fractions (train, validation, test) summing to 1, train and test above 0 (validation may be 0 when "
    "validation=false: nanoGPT's dataset.splits=[0.9,0,0.1]), e.g. dataset.splits=[0.9,0.05,0.05]."
)
WHOLE_SEED = Number("seed=0", whole=True, low=-(2**63), high=2**64 - 1)  # what torch.manual_seed takes


def _lr_fraction(key: str, example: float, low_open: bool = False) -> Number:
    """A multiplier of the optimizer's lr in [0, 1] ((0, 1] with `low_open`)."""
    interval = "(0, 1]" if low_open else "[0, 1]"
    return Number(
        f"schedule.{key}={example}",
        low=0,
        high=1,
        low_open=low_open,
        says=f"a fraction of the optimizer's lr in {interval}",
    )


def _phase(key: str, example: str) -> Number:
    """A schedule phase's length: steps (>= 1) or a fraction of the run (below 1)."""
    return Number(example, low=0, low_open=True, says="a positive number of steps, or a fraction of the run below 1")


# The trainer's own settings (configs/config.yaml) and the groups whose keys mean the same in every option.
RULES: dict[str, Rule] = {
    "iterations": Number("iterations=3000", whole=True, low=1),
    "epochs": Number("epochs=20", whole=True, low=1, null="train for iterations instead"),
    "batch_size": Number("batch_size=100", whole=True, low=1),
    "eval_every": Number("eval_every=500, or eval_every=epoch", whole=True, low=1, words=(EPOCH,)),
    "validation": Flag("validation=true"),
    "seed": WHOLE_SEED,
    "divergence_factor": Number("divergence_factor=1000", low=1, low_open=True, null="stop only on non-finite losses"),
    "grad_clip": Number("grad_clip=1.0", low=0, low_open=True, null="no clipping"),
    "record_grad_norm": Flag("record_grad_norm=true"),
    "diagnostics.every": Number(
        "diagnostics.every=20, or diagnostics.every=eval", whole=True, low=1, null="off", words=("eval",)
    ),
    "diagnostics.sharpness": Flag("diagnostics.sharpness=false"),
    "diagnostics.batch_size": Number("diagnostics.batch_size=1000", whole=True, low=1, null="the whole training split"),
    "diagnostics.lanczos_steps": Number("diagnostics.lanczos_steps=20", whole=True, low=2),
    "diagnostics.tolerance": Number("diagnostics.tolerance=0.001", low=0, low_open=True, high=1),
    "diagnostics.preconditioned": Flag(
        "diagnostics.preconditioned=true", null="where the optimizer's preconditioner is readable"
    ),
    "lookahead.enabled": Flag("lookahead.enabled=true"),
    "lookahead.k": Number("lookahead.k=5", whole=True, low=1),
    "lookahead.alpha": Number("lookahead.alpha=0.5", low=0, high=1, low_open=True),
    "flush_denormal": Flag("flush_denormal=true"),
    "threads": Number(
        "threads=1, or threads=null for torch's default", whole=True, low=1, null="torch's default, one per core"
    ),
    "progress": Flag("progress=false"),
    "auto_report": Flag("auto_report=false"),
    "resume": Flag("resume=true"),
    "device.type": Text(),
    "device.deterministic": Flag("device.deterministic=true"),
    "device.tf32": Flag("device.tf32=false"),
    "logger.kind": Choice(
        ("none", *KINDS),
        "logger=tensorboard",
        what="a tracker optbench knows",
        use=", ".join(f"logger={kind}" for kind in ("none", *KINDS)),
    ),
    "logger.tracking_uri": Text(null="MLflow's local SQLite store in the run or sweep dir"),
    "logger.experiment": Text(null="the sweep dir's path, or optbench"),
    "logger.log_dir": Text(null="the run or sweep dir's tensorboard/ folder"),
    "logger.mode": Choice(("offline", "online", "disabled"), "logger.mode=offline"),
    "logger.project": Text(),
    "logger.entity": Text(null="your default W&B entity"),
    "logger.dir": Text(null="the run or sweep dir"),
    "dataset.name": Text(),
    "dataset.root": Text(null="optbench's data cache"),
    "dataset.normalize": Flag("dataset.normalize=true"),
    "dataset.mean": Number("dataset.mean=0.1307"),
    "dataset.std": Number("dataset.std=0.3081", low=0, low_open=True),
    "dataset.validation_size": Number("dataset.validation_size=10000", whole=True, low=1),
    "dataset.validation_seed": WHOLE_SEED,
    "dataset.validation_pick": Choice(("random", "last"), "dataset.validation_pick=last"),
    "dataset.pixel_scale": Number("dataset.pixel_scale=255", low=0, low_open=True),
    "dataset.input_scale": Number("dataset.input_scale=0.1"),
    "dataset.sha256": Text(null="train on a text of your own"),
    "dataset.splits": Numbers(Number("", low=0, high=1, high_open=True), "", length=3, verdict=SPLITS_VERDICT),
    "schedule.step_size": _phase("step_size", "schedule.step_size=1000"),
    "schedule.gamma": Number("schedule.gamma=0.1", low=0, high=1, low_open=True, says="a factor in (0, 1]"),
    "schedule.warmup": _phase("warmup", "schedule.warmup=200"),
    "schedule.decay": _phase("decay", "schedule.decay=0.2"),
    "schedule.start_factor": _lr_fraction("start_factor", 0.01, low_open=True),
    "schedule.min_factor": _lr_fraction("min_factor", 0.0),
    "schedule.end_factor": _lr_fraction("end_factor", 0.0),
    "schedule.warmup_iters": Number("schedule.warmup_iters=100", whole=True, low=0),
    "schedule.lr_decay_iters": Number(
        "schedule.lr_decay_iters=2000", whole=True, low=1, null="the run's length, iterations"
    ),
    "schedule.min_lr": Number("schedule.min_lr=1e-4", low=0, null="a tenth of optimizer.lr"),
    "task.name": Text(),
    "task.description": Text(),
}
# A task's target (`task.target`) and batching (`task.batching`): checked as a whole, one message each.
TARGET = {
    "metric": Choice(tuple(TARGET_METRICS), "task.target.metric=test_accuracy"),
    "threshold": Number("task.target.threshold=0.97"),
    "mode": Choice(MODES, "task.target.mode=max"),
}
TARGET_OPTIONAL = {"strict": Flag("task.target.strict=true")}
BATCHING = {
    "drop_last": Flag("task.batching.drop_last=true"),
    "reshuffle": Flag("task.batching.reshuffle=true"),
    "shuffle_buffer": Number("task.batching.shuffle_buffer=20000", whole=True, low=1, null="a full permutation"),
}
LAYER_WIDTHS = Numbers(
    Number("", whole=True, low=1),
    "model.hidden=[100]",
    verdict=(
        "is not a list of positive layer widths. Give at least one hidden layer, e.g. model.hidden=[100] or "
        "model.hidden=[100,100]."
    ),
)
# Settings whose meaning depends on the option chosen (the `_target_` of the model or task node).
TARGET_RULES: dict[str, dict[str, Rule]] = {
    "optbench.model.MLP": {
        "hidden": LAYER_WIDTHS,
        "init": Choice(INITS, "model.init=lab"),
        "activation": Choice(tuple(ACTIVATIONS), "model.activation=sigmoid"),
    },
    "optbench.model.Conv2c2d": {
        "channels": Numbers(Number("", whole=True, low=1), "model.channels=[32,64]", length=2),
        "hidden": Number("model.hidden=1024", whole=True, low=1),
    },
    "optbench.model.Linear": {"weight": Number("model.weight=1.0"), "bias": Number("model.bias=0.0")},
    "optbench.model.gpt.GPT": {
        **{
            key: Number(f"model.{key}={value}", whole=True, low=1)
            for key, value in (("n_layer", 2), ("n_head", 4), ("n_embd", 64), ("block_size", 64))
        },
        "dropout": Number("model.dropout=0.2", low=0, high=1, high_open=True, says="a probability in [0, 1)"),
        "bias": Flag("model.bias=true"),
    },
    "optbench.tasks.supervised.Supervised": {
        "train_examples": Number("task.train_examples=5000", whole=True, low=1, null="the whole training split"),
        "full_batch": Flag("task.full_batch=true", null="as the dataset says (the thermometer's 11 points)"),
        "loss": Choice(SUPERVISED_LOSSES, "task.loss=squared", what="a loss optbench knows"),
    },
    "optbench.tasks.language.CharLanguageModel": {
        "eval_iters": Number("task.eval_iters=200", whole=True, low=1, null="fixed windows over the whole part")
    },
    "optbench.tasks.functions.Function2D": {
        "function": Choice(tuple(FUNCTIONS), "task.function=rosenbrock", what="a known 2-D function"),
        "start": Numbers(Number(""), "", length=2, verdict="must be two finite numbers, e.g. task.start=[-0.5,1.5]."),
        "noise": Number("task.noise=0.5", low=0),
    },
    "optbench.tasks.quadratic.NoisyQuadratic": {
        "dim": Number("task.dim=100", whole=True, low=1),
        "train_size": Number("task.train_size=1000", whole=True, low=1),
        "noise": Number("task.noise=0.6", low=0),
        "instance_seed": Number("task.instance_seed=42", whole=True, low=0, high=2**32 - 4),
    },  # NumPy's seeds, +3 splits
}
POSITIVE_LR = Number("optimizer.lr=0.01", low=0, low_open=True)
# What an optimizer's own constructor lets through but its step cannot take (found by tests/test_validation.py's
# walk): by `_target_`, the hyper-parameter's rule.
OPTIMIZER_RULES: dict[str, dict[str, Rule]] = {
    "torch.optim.LBFGS": {
        "lr": POSITIVE_LR,  # its line search divides by the step length
        "history_size": Number("optimizer.history_size=10", whole=True, low=1),
    },
    "pytorch_optimizer.MARS": {"lr": POSITIVE_LR},  # it divides lr_1d by lr
    "pytorch_optimizer.Prodigy": {"d0": Number("optimizer.d0=1e-6", low=0, low_open=True)},  # its first d
    "schedulefree.AdamWScheduleFree": {
        "betas": Numbers(
            Number("", low=0, high=1, low_open=True, high_open=True), "optimizer.betas=[0.9,0.999]", length=2
        )
    },  # 1/beta1
}
# hydra/sweeper=tune and hydra/launcher=vectorized: checked by the plugins as they start.
SWEEPER_RULES: dict[str, Rule] = {
    "search": Choice(
        SEARCHES + ADAPTIVE_SEARCHES,
        "hydra.sweeper.search=tpe hydra.sweeper.trials=16 (tpe, cmaes "
        "and gp need the tune extra: pip install 'optbench[tune]')",
        what="a search",
    ),
    "trials": Number("hydra.sweeper.trials=16", whole=True, low=1),
    "batch": Number("hydra.sweeper.batch=4", whole=True, low=1, null="what the launcher runs at once"),
    "select": Choice(
        SELECTIONS,
        "hydra.sweeper.select=final",
        what="a criterion",
        use=(
            "time_to_target (iterations to the task's target, final metric breaks ties), final (last evaluation) or "
            "best (best evaluation)"
        ),
    ),
    "split": Choice(
        SPLITS,
        "hydra.sweeper.split=validation",
        what="a split to select on",
        use=(
            "validation (held out of the training examples; the reported test split is never tuned on) or test "
            "(DeepOBS's way)"
        ),
    ),
    "tuning_seed": WHOLE_SEED,
    "search_seed": Number(
        "hydra.sweeper.search_seed=0", whole=True, low=0, high=2**32 - 1
    ),  # SciPy's and NumPy's seeds
    "digits": Number("hydra.sweeper.digits=3", whole=True, low=1, high=17),
}
LAUNCHER_RULES: dict[str, Rule] = {
    "max_members": Number("hydra.launcher.max_members=32", whole=True, low=1, says="a whole number >= 1"),
    "processes": Number("hydra.launcher.processes=2", whole=True, low=1, null="one per visible GPU on CUDA, else one"),
}


def fail(message: str) -> NoReturn:
    """Stop with `message` (one paragraph) as the user's error."""
    raise OptbenchError(message)


_MISSING = object()


def check(rules: Mapping[str, Rule], node: Any, prefix: str = "") -> None:
    """Check each setting of `node` (a config node or a dict) that has a rule; dotted keys reach into sub-nodes."""
    for path, rule in rules.items():
        if OmegaConf.is_config(node):
            value = OmegaConf.select(node, path, default=_MISSING, throw_on_missing=False)
        else:
            value = node.get(path, _MISSING)
        if value is not _MISSING and (message := rule.problem(prefix + path, _plain(value))):
            fail(message)


def check_config(cfg: DictConfig) -> None:
    """Check every setting of the job config `cfg`; the first problem found is one OptbenchError."""
    check(RULES, cfg)
    task = OmegaConf.select(cfg, "task.name")
    for group in ("model", "task"):
        node = cfg.get(group)
        if node is not None:
            check(TARGET_RULES.get(str(node.get("_target_")), {}), node, f"{group}.")
    if cfg.get("task") is not None:
        check_target(task, cfg.task.target)
        check_batching(task, cfg.task.get("batching"))
    _check_relations(cfg, task)
    optimizer = check_optimizer(cfg)
    check_diagnostics(cfg, optimizer)
    if cfg.epochs is None:  # with epochs, the run's length is known once the data are (see `budget`)
        check_schedule(cfg, cfg.iterations)
        build_schedule(cfg.schedule, optimizer, cfg.iterations, _schedule_name(cfg))
    Device.of(cfg.device).resolve()
    require_tracker(OmegaConf.select(cfg, "logger.kind", default="none"))


def check_diagnostics(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> None:
    """`diagnostics.preconditioned=true` only for an optimizer whose preconditioner a run can read."""
    node = cfg.get("diagnostics")
    if node is None or node.get("every") is None or node.get("preconditioned") is not True:
        return
    if type(optimizer).__name__ not in PRECONDITIONED:
        fail(
            f"diagnostics.preconditioned=true: optimizer={optimizer_name(cfg, group_choices(cfg))} ({type(optimizer).__name__}) keeps no "
            f"diagonal preconditioner optbench can read (it reads {', '.join(PRECONDITIONED)}: torch's and the "
            "scratch ones, without Lookahead). Use diagnostics.preconditioned=null to measure it where it can be read "
            "(the plain sharpness is measured either way)."
        )


def check_target(task: str, node: Any) -> None:
    """A task's target: a metric of test.csv, a threshold it can reach, and which way is better."""
    node = _plain(node) if node is not None else {}
    good = isinstance(node, dict) and not any(rule.problem("", node.get(key)) for key, rule in TARGET.items())
    good = good and not set(node) - {*TARGET, *TARGET_OPTIONAL}
    good = good and not any(rule.problem("", node[key]) for key, rule in TARGET_OPTIONAL.items() if key in node)
    if good and node["metric"] == "test_accuracy" and not 0 <= node["threshold"] <= 1:
        good = False  # an accuracy is a fraction
    if good and node["metric"] == "test_loss" and node["threshold"] < 0:
        good = False  # no loss of optbench's tasks goes below 0
    if not good:
        fail(
            f"task={task}: target={node} is not a valid target. Give task.target.metric (one of "
            f"{', '.join(TARGET_METRICS)}), task.target.threshold (a finite number: a fraction in [0, 1] for an "
            "accuracy, >= 0 for a loss) and task.target.mode (max or min), and optionally task.target.strict (true: the threshold itself misses), e.g. "
            "task.target.threshold=0.97."
        )


def check_batching(task: str, node: Any) -> None:
    """A task's `batching` mapping (None: the DataLoader's way)."""
    values = _plain(node)
    if values is None:
        return
    if (
        not isinstance(values, dict)
        or set(values) - set(BATCHING)
        or any(rule.problem("", values[key]) for key, rule in BATCHING.items() if key in values)
    ):
        fail(
            f"task={task}: batching={values} is not a valid batching. It takes drop_last (true/false), reshuffle "
            "(true/false) and shuffle_buffer (a positive number, or null for a full permutation), e.g. "
            "task.batching.reshuffle=true."
        )


def _check_relations(cfg: DictConfig, task: str | None) -> None:
    """What single settings cannot say: the ones that must agree with each other."""
    model = cfg.get("model")
    if OmegaConf.select(cfg, "task.batching") is not None and model is not None and "block_size" in model:
        fail(
            f"task={task}: task.batching does not apply to a language model, whose minibatches are random windows "
            "of the text. Remove the task.batching override."
        )
    if (splits := OmegaConf.select(cfg, "dataset.splits")) is not None:
        if abs(sum(splits) - 1) > 1e-9 or splits[0] == 0 or splits[2] == 0:
            fail(f"dataset.splits={list(splits)} {SPLITS_VERDICT}")
        if splits[1] == 0 and cfg.validation:
            fail(
                f"validation=true evaluates the validation part, and dataset.splits={list(splits)} leaves none. Give it "
                "one, e.g. dataset.splits=[0.9,0.05,0.05], or use validation=false."
            )
    if model is not None and "n_head" in model and model.n_embd % model.n_head:
        fail(
            f"model.n_embd={model.n_embd} is not divisible by model.n_head={model.n_head}: each head gets "
            "n_embd / n_head channels. Choose e.g. model.n_embd=64 model.n_head=4."
        )
    if OmegaConf.select(cfg, "task.function") is not None:  # a 2-D function has no training split
        for key, value, fix in (
            ("epochs", cfg.epochs, "iterations=... instead (e.g. iterations=500)"),
            ("eval_every", cfg.eval_every, "eval_every in steps (e.g. eval_every=25)"),
        ):
            if value is not None and (key == "epochs" or value == EPOCH):
                fail(f"{key}={value} needs a task with a training split; task={task} has none. Give {fix}.")


def _optimizer_name(cfg: DictConfig) -> str:
    return optimizer_name(cfg, group_choices(cfg))


def _schedule_name(cfg: DictConfig) -> str:
    return group_choices(cfg).get("schedule") or str(cfg.schedule.get("_target_", "?")).rsplit(".", 1)[-1]


def check_hyperparameter(name: str, key: str, value: Any, default: Any, node: str = "optimizer") -> None:
    """One optimizer hyper-parameter (of the config node `node`) against the type of its constructor default,
    finiteness and OPTIMIZER_RANGES (the rest of its range is the constructor's own check)."""
    where = f"{node}.{key}={value!r}"
    if isinstance(default, bool) and not isinstance(value, bool):
        fail(f"{where} must be true or false (optimizer={name}).")
    if _is_number(default) and not (_is_number(value) and (math.isfinite(value) or not math.isfinite(default))):
        fail(
            f"{where} must be a {'finite ' if _is_number(value) else ''}number, e.g. {node}.{key}={default} "
            f"(the default of optimizer={name})."
        )
    if isinstance(default, tuple) and not (
        isinstance(value, list)
        and len(value) == len(default)
        and all(
            (_is_number(v) and math.isfinite(v)) or (v is None and d is None)  # Adafactor's eps=(None, 1e-3)
            for v, d in zip(value, default)
        )
    ):
        example = ",".join("null" if v is None else str(float(v)) for v in default)
        fail(f"{where} must be a list of {len(default)} numbers, e.g. {node}.{key}=[{example}].")
    if key == "betas" and isinstance(value, list) and not all(v is None or 0 <= v < 1 for v in value):
        example = ",".join(str(float(v)) for v in default)  # the decay rates of moving averages
        fail(f"{where} must be a list of {len(default)} numbers, each in [0, 1), e.g. {node}.{key}=[{example}].")
    if key in OPTIMIZER_RANGES and _is_number(value):
        low, high = OPTIMIZER_RANGES[key]
        if not low <= value < high:
            fail(f"{where} is outside [{low:g}, {high:g}): use a value such as {node}.{key}=0.9.")


def check_hyperparameters(settings: Mapping[str, Any], name: str, cls: type, node: str = "optimizer") -> None:
    """Every constructor argument in `settings` (plain values, of the config node `node`) against `cls`'s defaults."""
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    for key, value in settings.items():
        if not key.startswith("_") and key in defaults:
            check_hyperparameter(name, key, value, defaults[key], node)


def check_optimizer(cfg: DictConfig) -> torch.optim.Optimizer:
    """Check the optimizer's settings, its param_groups' and their optimizers', then build it (with
    Lookahead, if on) on a stand-in model, so the constructors' own checks run before any data are read."""
    name = _optimizer_name(cfg)
    protocol = protocol_of(cfg.optimizer, name)
    own = OmegaConf.masked_copy(cfg.optimizer, [k for k in cfg.optimizer if k not in RESERVED_KEYS])
    own_class = optimizer_class(own, name, protocol)
    check_hyperparameters(_plain(own), name, own_class)
    check(OPTIMIZER_RULES.get(str(own._target_), {}), own, "optimizer.")
    for index, spec in enumerate(group_specs(cfg.optimizer, name)):
        group = f"optimizer.param_groups[{index}]"
        for key in ("ndim", "not_ndim"):
            dims = getattr(spec, key)
            if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
                fail(
                    f"{group}.{key}={dims!r} must list tensor dimensions, whole numbers >= 0, e.g. {group}.{key}=[0,1] "
                    f"(biases and norm weights) or {group}.{key}=2 (matrices)."
                )
        if spec.optimizer is None:
            check_hyperparameters(spec.settings, name, own_class, group)
        else:
            other_class = optimizer_class(spec.optimizer, name, protocol)
            check_hyperparameters(_plain(spec.optimizer), name, other_class, f"{group}.optimizer")
            check(OPTIMIZER_RULES.get(str(spec.optimizer._target_), {}), spec.optimizer, f"{group}.optimizer.")
            check_hyperparameters(spec.settings, name, other_class, group)
    stand_in = torch.nn.Linear(2, 2)  # a matrix and a vector: every param_groups selector finds its kind
    return build_optimizer(cfg.optimizer, stand_in, name, cfg.get("lookahead"))


def check_schedule(cfg: DictConfig, iterations: int) -> None:
    """The schedule applies to the optimizer, and its phases fit in the run's `iterations` steps."""
    name, optimizer = _schedule_name(cfg), _optimizer_name(cfg)
    protocol = protocol_of(cfg.optimizer, optimizer)
    if name != "constant" and protocol.schedule is not True:
        fail(f"schedule={name} does not apply to optimizer={optimizer}: {protocol.schedule} Use schedule=constant.")
    phases = {
        key: phase_steps(cfg.schedule[key], iterations)
        for key in ("warmup", "decay", "step_size")
        if key in cfg.schedule
    }
    for key, steps in phases.items():
        if steps >= iterations:
            fail(
                f"schedule.{key}={cfg.schedule[key]!r} is {steps} steps, not shorter than the whole run "
                f"(iterations={iterations}). Use fewer, e.g. {RULES[f'schedule.{key}'].example}."
            )
    if "warmup" in phases and "decay" in phases and phases["warmup"] + phases["decay"] >= iterations:
        fail(
            f"schedule.warmup ({phases['warmup']} steps) and schedule.decay ({phases['decay']} steps) leave no "
            f"stable phase in iterations={iterations}: shorten one of them."
        )
    if "lr_decay_iters" in cfg.schedule:  # nanoGPT's: its cosine runs from warmup_iters to lr_decay_iters
        decay_end = iterations if cfg.schedule.lr_decay_iters is None else cfg.schedule.lr_decay_iters
        if decay_end == cfg.schedule.warmup_iters:  # nanoGPT's get_lr divides by their difference (a shorter decay
            fail(  # is nanoGPT's too: the warm-up, then min_lr)
                f"schedule.lr_decay_iters ({decay_end}, {'the run' if cfg.schedule.lr_decay_iters is None else 'given'}) "
                f"equals schedule.warmup_iters={cfg.schedule.warmup_iters}: nanoGPT's cosine runs from one to the other "
                f"and divides by their difference. Give another, e.g. schedule.lr_decay_iters={max(iterations, 2000)}."
            )
        lr, min_lr = OmegaConf.select(cfg, "optimizer.lr"), cfg.schedule.min_lr
        if min_lr is not None and _is_number(lr) and min_lr > lr:
            fail(
                f"schedule.min_lr={min_lr:g} is above optimizer.lr={lr:g}: the decay would raise the lr. Use "
                f"schedule.min_lr=null (a tenth of the lr, right when tuning the lr) or e.g. schedule.min_lr={lr / 10:g}."
            )


def check_sweeper(settings: Mapping[str, Any]) -> None:
    """The tune sweeper's settings (`hydra.sweeper.*`): each against SWEEPER_RULES, and its seeds."""
    check(SWEEPER_RULES, settings, "hydra.sweeper.")
    seeds = _plain(settings.get("seeds"))
    count = WHOLE_SEED.accepts(seeds) and isinstance(seeds, int) and seeds >= 1
    if not count and not (isinstance(seeds, list) and seeds and all(WHOLE_SEED.accepts(s) for s in seeds)):
        fail(
            f"hydra.sweeper.seeds={seeds!r} must be a number of seeds (e.g. hydra.sweeper.seeds=5 for seeds 0..4) "
            "or a list of seeds (hydra.sweeper.seeds=[0,1,2])."
        )


def check_launcher(settings: Mapping[str, Any]) -> None:
    """The vectorised launcher's settings (`hydra.launcher.*`)."""
    check(LAUNCHER_RULES, settings, "hydra.launcher.")


# What needs the loaded data: called once the task holds its data.


@dataclass(frozen=True)
class Budget:
    """How long a job trains and how often it evaluates, in optimizer steps."""

    iterations: int
    eval_every: int


def budget(
    cfg: DictConfig, train_size: int | None, steps_per_epoch: Callable[[int], int | None], full_batch: bool = False
) -> Budget:
    """The job's budget in steps, from its checked settings and the training split's size (`train_size`
    None: a task without a dataset, where batch_size and epochs do not apply)."""
    task = OmegaConf.select(cfg, "task.name")
    iterations, per_epoch = cfg.iterations, None  # eval_every=epoch is refused for tasks without a training split
    if train_size is not None:
        batch_size = train_size if full_batch else cfg.batch_size
        if full_batch:
            log.info("task=%s trains full-batch: every step uses all %d examples", task, train_size)
        elif batch_size > train_size:
            fail(
                f"batch_size={batch_size} is larger than the training split ({train_size} examples of task={task}). "
                f"Use batch_size={train_size} or less."
            )
        per_epoch = steps_per_epoch(batch_size)
        if cfg.epochs is not None:
            iterations = cfg.epochs * per_epoch
            log.info("epochs=%d: %d iterations of batch_size=%d", cfg.epochs, iterations, batch_size)
            check_schedule(cfg, iterations)
    eval_every = per_epoch if cfg.eval_every == EPOCH else cfg.eval_every
    if eval_every > iterations:
        log.warning(
            "eval_every=%s is larger than iterations=%d: the test split is evaluated only at the end.",
            cfg.eval_every,
            iterations,
        )
    return Budget(iterations, eval_every)


def check_train_examples(count: int, available: int, task: str) -> None:
    """`task.train_examples`: at most the training split's examples."""
    if count > available:
        fail(
            f"task.train_examples={count} is more than task={task}'s training split holds ({available} examples): "
            f"give at most {available}, e.g. task.train_examples={min(5000, available)}, or null for all of them."
        )


def check_held_out(size: int, available: int, dataset: str) -> None:
    """`dataset.validation_size` leaves training examples: at most `available` - 1 of them."""
    if size >= available:
        fail(
            f"dataset.validation_size={size!r} must be a whole number between 1 and {available - 1} (the {dataset} "
            f"training split has {available} examples), e.g. dataset.validation_size=10000."
        )


def fixed_batch(size: int | None, available: int, task: str, what: str = "examples") -> int:
    """`diagnostics.batch_size`: `size` of the `available` training examples (all for None), at most all of them."""
    if size is None:
        return available
    if size > available:
        fail(
            f"diagnostics.batch_size={size} is larger than task={task}'s training split ({available} {what}): give "
            f"at most {available}, e.g. diagnostics.batch_size={min(1000, available)}, or diagnostics.batch_size=null "
            "for all of them."
        )
    return size


def check_text_parts(block_size: int, parts: Mapping[str, int]) -> None:
    """Every part of the text (`parts`: name -> characters) holds at least one window of `block_size` + 1."""
    for part, length in parts.items():
        if length <= block_size:
            fail(
                f"The {part} part of the text has {length} characters, not more than model.block_size={block_size}: "
                "no window fits. Use a smaller model.block_size or change dataset.splits."
            )
