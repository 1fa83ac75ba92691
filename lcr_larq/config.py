"""Settings as dataclasses: one machinery for every command's flags, recipes and checks.

Every command's settings are a dataclass whose fields are made with
:func:`setting`. The same field is

* a command-line flag (``lcr_lambda`` → ``--lcr-lambda``),
* a key of a YAML recipe (``--config FILE``; flags given on the command line
  override it; :func:`save_recipe` writes one that ``--config`` reads back),
* a checked value: its type (``int``, ``float``, ``str``, ``bool``, optional,
  or a tuple of them), its choices and its range; every float must be finite.

A bad value ends in a :class:`ConfigError` whose one-line message names the
flag (or the recipe key) and what it accepts. :class:`TrainConfig` holds the
settings of one training run; the other commands' settings live beside their
code and reuse everything here.

Example:
    >>> config = parse_args(["--model", "resnet18", "--lcr-lambda", "2"])
    >>> config.model, config.lcr_lambda, config.lcr_beta
    ('resnet18', 2.0, 2.0)
    >>> validate(parse_args(["--lcr-lambda", "nan"]))
    Traceback (most recent call last):
    ...
    lcr_larq.errors.ConfigError: --lcr-lambda must be a finite number, got nan
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from lcr_larq import optimizers
from lcr_larq.errors import ConfigError
from lcr_larq.graph import DEFAULT_EVERY, DEFAULT_SAMPLES

__all__ = [
    "ConfigError",
    "TrainConfig",
    "add_arguments",
    "build_config",
    "check_fields",
    "load_recipe",
    "parse_args",
    "recipe_fields",
    "save_recipe",
    "setting",
    "validate",
]


def setting(
    default: Any,
    help: str,  # noqa: A002
    *,
    choices: tuple | None = None,
    low: float | None = None,
    above: float | None = None,
    high: float | None = None,
    below: float | None = None,
    recipe: bool = True,
    metavar: str | tuple[str, ...] | None = None,
    repeat: bool = False,
):
    """A settings field: its default, its ``--help`` text and what it accepts.

    Args:
        choices: the values allowed.
        low, above: the smallest value allowed, or the bound it must exceed.
        high, below: the largest value allowed, or the bound it must stay under.
        recipe: ``False`` for a setting of the command, not of the run
            (e.g. ``--overwrite``): it is never written to or read from a recipe.
        metavar: the flag's value name(s) in ``--help``.
        repeat: a sequence setting whose flag may be given several times
            (``--vary a=1,2 --vary b=3,4``), each adding its values.
    """
    meta = dict(help=help, choices=choices, low=low, above=above, high=high, below=below,
                recipe=recipe, metavar=metavar, repeat=repeat)
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple default for a sequence setting")
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- types
@dataclass(frozen=True)
class Kind:
    """The type of a setting: a scalar ``base`` type, whether None is
    allowed, and for tuples their length (``None``: one or more)."""

    base: type
    optional: bool = False
    sequence: bool = False
    length: int | None = None

    @property
    def noun(self) -> str:
        noun = {bool: "true or false", int: "a whole number", float: "a finite number",
                str: "a text"}[self.base]
        if self.sequence:
            count = f"{self.length}" if self.length else "one or more"
            noun = f"{count} values, each {noun}"
        return noun + (" or null" if self.optional else "")


def _kind(annotation: Any) -> Kind:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _kind(args[0])
        return dataclasses.replace(inner, optional=True)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return Kind(args[0], sequence=True)
        return Kind(args[0], sequence=True, length=len(args))
    if annotation in (bool, int, float, str):
        return Kind(annotation)
    raise TypeError(f"unsupported setting type {annotation!r}")


def kinds(cls) -> dict[str, Kind]:
    """``{field name: Kind}`` of a settings dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints[f.name]) for f in dataclasses.fields(cls)}


def flag_name(name: str) -> str:
    """``lcr_lambda`` → ``--lcr-lambda``."""
    return "--" + name.replace("_", "-")


def parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _scalar_from_text(base: type, text: str):
    if base is bool:
        return parse_bool(text)
    if base is int:
        return int(text)
    if base is float:
        return float(text)
    return text


def _scalar_from_yaml(base: type, value):
    """A recipe's value as ``base``, strictly: YAML ``true`` is no number and
    ``1`` no text."""
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            return int(value)
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as text
            return float(value)
    elif isinstance(value, str):
        return value
    raise ValueError(value)


def convert(kind: Kind, value, from_text: bool):
    """``value`` (a flag's text, or a recipe's YAML value) as ``kind``; raises
    ``ValueError`` when it is none."""
    scalar = _scalar_from_text if from_text else _scalar_from_yaml
    if value is None:
        if kind.optional:
            return None
        raise ValueError(value)
    if kind.sequence:
        values = value if isinstance(value, list | tuple) else [value]
        if not values or (kind.length and len(values) != kind.length):
            raise ValueError(value)
        return tuple(scalar(kind.base, v) for v in values)
    if isinstance(value, list | tuple):
        raise ValueError(value)
    return scalar(kind.base, value)


# --------------------------------------------------------------------------- checks
def _check(name: str, f: dataclasses.Field, kind: Kind, value, where: str) -> None:
    meta = f.metadata
    what = where or flag_name(name)
    if value is None:
        if not kind.optional:
            raise ConfigError(f"{what} needs {kind.noun}, got null")
        return
    values = value if kind.sequence else (value,)
    if kind.sequence and (not values or (kind.length and len(values) != kind.length)):
        raise ConfigError(f"{what} needs {kind.noun}, got {list(values)}")
    for v in values:
        wrong_type = not isinstance(v, kind.base) or (kind.base is not bool and isinstance(v, bool))
        if kind.base is float and isinstance(v, int) and not isinstance(v, bool):
            wrong_type = False
        if wrong_type:
            raise ConfigError(f"{what} needs {kind.noun}, got {v!r}")
        if kind.base is float and not math.isfinite(v):
            raise ConfigError(f"{what} must be a finite number, got {v}")
        choices = meta.get("choices")
        if choices is not None and v not in choices:
            raise ConfigError(f"{what} must be one of {list(choices)}, got {v!r}")
        if meta.get("low") is not None and v < meta["low"]:
            raise ConfigError(f"{what} must be >= {_shown(meta['low'])}, got {_shown(v)}")
        if meta.get("above") is not None and v <= meta["above"]:
            raise ConfigError(f"{what} must be > {_shown(meta['above'])}, got {_shown(v)}")
        if meta.get("high") is not None and v > meta["high"]:
            raise ConfigError(f"{what} must be <= {_shown(meta['high'])}, got {_shown(v)}")
        if meta.get("below") is not None and v >= meta["below"]:
            raise ConfigError(f"{what} must be < {_shown(meta['below'])}, got {_shown(v)}")


def check_fields(config) -> None:
    """Checks every field of a settings dataclass against its type, choices
    and range; raises :class:`ConfigError` naming the flag."""
    field_kinds = kinds(type(config))
    for f in dataclasses.fields(config):
        _check(f.name, f, field_kinds[f.name], getattr(config, f.name), "")


def validate(config):
    """Checks every setting of ``config`` (its fields, then its own
    ``check()`` for rules between settings); returns it."""
    check_fields(config)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


# --------------------------------------------------------------------------- flags
def add_arguments(
    parser: argparse.ArgumentParser, cls=None, exclude: tuple[str, ...] = ()
) -> None:
    """Adds ``--config`` and one ``--flag`` per field of ``cls`` (default
    :class:`TrainConfig`; defaults are left to the dataclass, so a flag not
    given does not override a recipe)."""
    cls = cls or TrainConfig
    parser.add_argument("--config", metavar="FILE",
                        help="YAML recipe; flags given here override it")
    field_kinds = kinds(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kind = field_kinds[f.name]
        meta = f.metadata
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f.name}
        text = meta["help"]
        if kind.base is bool and not kind.sequence:
            options.update(nargs="?", const=True, type=_flag_type(f.name, kind),
                           metavar="true|false")
        else:
            options["type"] = _flag_type(f.name, kind)
            if kind.sequence:
                options["nargs"] = kind.length or "+"
                if meta.get("repeat"):
                    options["action"] = "extend"
            if meta.get("metavar"):
                options["metavar"] = meta["metavar"]
            elif meta.get("choices") and not kind.sequence:
                options["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
            default = f.default
            # None means "derived" and a help text naming its default says it better.
            if default is not None and "default" not in text:
                shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
                text = f"{text} (default: {shown})"
        parser.add_argument(flag_name(f.name), help=text, **options)


def _shown(value) -> str:
    """A bound or value in an error: whole numbers in full, floats short."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _flag_type(name: str, kind: Kind):
    scalar = Kind(kind.base)

    def parse(text: str):
        try:
            return convert(scalar, text, from_text=True)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag_name(name)} needs {scalar.noun}, got {text!r}"
            ) from None

    parse.__name__ = kind.base.__name__
    return parse


def expand_names(parts, groups: dict[str, tuple[str, ...]], names, noun: str) -> list[str]:
    """The names a list option stands for: each part a name of ``names`` or
    a group of ``groups`` (such as ``all``), in order, each name once.

    Example:
        >>> expand_names(["b", "odd", "c"], {"odd": ("a", "c")}, "abc", "letter")
        ['b', 'a', 'c']
    """
    out: list[str] = []
    for part in parts:
        if part not in groups and part not in names:
            raise ConfigError(f"unknown {noun} {part!r}; choose {', '.join(groups)} or names "
                              f"from {', '.join(names)}")
        out.extend(n for n in groups.get(part, (part,)) if n not in out)
    return out


# --------------------------------------------------------------------------- recipes
def recipe_fields(cls) -> list[dataclasses.Field]:
    """The fields of ``cls`` that belong in a recipe."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("recipe", True)]


def load_recipe(path: str, cls=None) -> dict[str, Any]:
    """A YAML recipe's settings for ``cls`` (default :class:`TrainConfig`),
    each of its type; unknown keys, values of the wrong type and files that
    are not YAML text are refused."""
    cls = cls or TrainConfig
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path} does not exist")
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: give a YAML recipe") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path} ({error.strerror})") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    fields = {f.name: f for f in recipe_fields(cls)}
    field_kinds = kinds(cls)
    recipe = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{path}: unknown key {key!r}; valid keys: {sorted(fields)}")
        kind = field_kinds[name]
        try:
            recipe[name] = convert(kind, value, from_text=False)
        except (ValueError, TypeError, OverflowError):
            raise ConfigError(
                f"{path}: key {name!r} needs {kind.noun}, got {value!r}"
            ) from None
        _check(name, fields[name], kind, recipe[name], f"{path}: key {name!r}")
    return recipe


def build_config(namespace: argparse.Namespace, cls=None):
    """The settings of parsed flags (default :class:`TrainConfig`): defaults,
    then the recipe, then the flags."""
    cls = cls or TrainConfig
    values = {}
    if getattr(namespace, "config", None):
        values.update(load_recipe(namespace.config, cls))
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({
        k: tuple(v) if isinstance(v, list) else v
        for k, v in vars(namespace).items() if k in names
    })
    return cls(**values)


def given_flags(namespace: argparse.Namespace, cls) -> set[str]:
    """The fields of ``cls`` set on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k for k in vars(namespace) if k in names}


def save_recipe(config, path: str) -> None:
    """Writes ``config``'s recipe settings as YAML that ``--config`` reads back."""
    values = {}
    for f in recipe_fields(type(config)):
        value = getattr(config, f.name)
        values[f.name] = list(value) if isinstance(value, tuple) else value
    with open(path, "w") as handle:
        yaml.safe_dump(values, handle, sort_keys=False, allow_unicode=True)


def recipe_dict(config) -> dict[str, Any]:
    """``config``'s recipe settings as a dict (tuples as lists, as in YAML)."""
    return {
        f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
        for f in recipe_fields(type(config))
    }


# --------------------------------------------------------------------------- training
SEED_MAX = 2**32 - 1  # TensorFlow's and numpy's seed range
RUNS_DIR = "runs"


@dataclass
class TrainConfig:
    """All settings of one training run (``train.py``'s flags)."""

    model: str = setting("resnet20", "architecture (--list-models lists them)")
    dataset: str = setting(
        "digits", "digits (offline), cifar10, cifar100, imagenet2012, folder:PATH or npz:PATH"
    )
    data_dir: str | None = setting(None, "TFDS data directory (or manual ImageNet download)")
    precision: str = setting(
        "1w1a", "1w1a (binary weights and activations) or 1w32a", choices=("1w1a", "1w32a")
    )
    full_precision: bool = setting(False, "train the full-precision counterpart (LCR off)")
    bireal: bool = setting(False, "real-valued shortcut around every binary conv (Bi-Real)")
    shortcut: str = setting(
        "auto",
        "downsampling shortcut of the ResNets: zero-pad (option A, IR-Net's ResNet-20), conv "
        "(strided 1x1 conv + BN, IR-Net's ResNet-18), avgpool-conv (Bi-Real's); auto: the "
        "paper baselines' (zero-pad for resnet20, conv for CIFAR resnet18/34, avgpool-conv "
        "from 100 px)",
        choices=("auto", "zero-pad", "conv", "avgpool-conv"),
    )
    weight_quantizer: str = setting(
        "irnet", "binary weight quantizer of the ResNets", choices=("irnet", "ste_sign",
                                                                    "proxconnect"),
    )
    prox_rho_end: float = setting(
        20.0, "ProxConnect: final ρ of the linear schedule (from 0)", low=0, high=1e6
    )
    prox_gradient: str = setting(
        "prox", "ProxConnect backward: prox (dL_ρ/dw) or ste (identity)", choices=("prox", "ste")
    )
    prox_hard_epochs: int = setting(1, "ProxConnect: final epochs with the hard sign", low=0)
    input_size: int | None = setting(
        None, "resize images to this square size", low=8, high=2048
    )
    lcr_lambda: float = setting(
        4.0, "LCR strength λ (0 trains the plain BNN)", low=0, high=1e3
    )
    lcr_beta: float = setting(
        2.0, "LCR block weighting β: block k of K weighs β^(k−K)", above=1, high=100
    )
    lcr_reference: str = setting(
        "latent", "full-precision reference: latent or teacher", choices=("latent", "teacher")
    )
    lcr_form: str = setting(
        "ratio", "LCR loss form: ratio (paper) or mse (public code)", choices=("ratio", "mse")
    )
    power_iterations: int = setting(
        5, "power-iteration steps per spectral norm", low=1, high=1000
    )
    lcr_samples: int = setting(
        DEFAULT_SAMPLES, "estimate L_lip on this many samples per batch (0: all)", low=0, high=2**20
    )
    lcr_every: int = setting(
        DEFAULT_EVERY, "LCR on every k-th training step only, its weight ×k (1: every step, "
        "as the paper)",
        low=1, high=10**6,
    )
    teacher: str | None = setting(
        None, "full-precision run directory or .keras file (--lcr-reference teacher)"
    )
    epochs: int = setting(40, "training epochs", low=1, high=100_000)
    batch_size: int = setting(128, "global batch size", low=1, high=2**20)
    steps_per_epoch: int | None = setting(
        None, "limit the steps of each epoch", low=1, high=10**9
    )
    validation_split: float = setting(
        0.1,
        "held out of the training data and evaluated every epoch: a share in (0, 1) "
        "(stratified for in-memory data) or a number of images (the paper holds out 10000 "
        "CIFAR images); 0: none",
        low=0, high=10**9,
    )
    bn_recalibration_batches: int = setting(
        100,
        "after training, set every BN's moving mean and variance to the exact average over "
        "this many training batches (no augmentation) before testing and saving; 0: keep "
        "the moving averages",
        low=0, high=10**9,
    )
    optimizer: str = setting(
        "sgd", "sgd (PyTorch's SGD, the papers'), adam (PyTorch's Adam) or adamw",
        choices=optimizers.OPTIMIZERS,
    )
    lr: float = setting(0.1, "initial learning rate", above=0, high=10)
    lr_schedule: str = setting(
        "cosine", "learning-rate decay to 0: cosine, linear or constant",
        choices=optimizers.LR_SCHEDULES,
    )
    lr_update: str = setting(
        "epoch",
        "when the learning rate changes: epoch (once per epoch, as the papers' PyTorch "
        "schedulers) or step",
        choices=("epoch", "step"),
    )
    warmup_epochs: int = setting(
        0, "linear learning-rate warm-up epochs before the decay", low=0
    )
    momentum: float = setting(0.9, "SGD momentum", low=0, below=1)
    weight_decay: float = setting(1e-4, "weight decay", low=0, high=1)
    weight_decay_mode: str = setting(
        "auto",
        "coupled: an L2 term added to the gradient before momentum (PyTorch's SGD and Adam "
        "weight_decay, the papers'); decoupled: w -= lr*wd*w outside the optimizer "
        "(Keras' weight_decay, AdamW); auto: decoupled for adamw, coupled otherwise",
        choices=("auto", *optimizers.WEIGHT_DECAY_MODES),
    )
    weight_decay_on: str = setting(
        "all",
        "all (every trainable variable, PyTorch's default) or conv-kernels "
        "(convolution kernels only, as ReActNet)",
        choices=optimizers.DECAY_TARGETS,
    )
    label_smoothing: float = setting(
        0.0, "label smoothing ε of the cross entropy", low=0, below=1
    )
    strategy: str = setting(
        "default", "tf.distribute strategy: default, mirrored or multiworker (reads TF_CONFIG)",
        choices=("default", "mirrored", "multiworker"),
    )
    seed: int = setting(0, "random seed (weights, data order, augmentation)", low=0,
                        high=SEED_MAX)
    output_dir: str | None = setting(
        None,
        f"where results, checkpoints and the models go (default: {RUNS_DIR}/ and a name made "
        "from the model, dataset, λ and seed)",
    )
    verbose: int = setting(
        1, "Keras verbosity: 0 silent, 1 progress bar (one line per epoch when not on a "
        "terminal), 2 one line per epoch", choices=(0, 1, 2),
    )
    overwrite: bool = setting(
        False, "train again into an --output-dir that holds a finished run", recipe=False
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> str:
        """``output_dir``, or the name derived from the settings."""
        return self.output_dir or os.path.join(RUNS_DIR, default_run_name(self))

    def check(self) -> None:
        """Rules between settings (each setting alone is checked by
        :func:`check_fields`)."""
        from lcr_larq import data
        from lcr_larq.models import MODELS

        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {sorted(MODELS)}")
        kind = self.dataset.split(":", 1)[0]
        if kind not in data.LOADERS:
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; choose one of {data.dataset_names()}"
            )
        if self.weight_quantizer == "proxconnect" and not self.prox_hard_epochs < self.epochs:
            raise ConfigError("--prox-hard-epochs must be below --epochs")
        if self.optimizer == "adamw" and self.weight_decay_mode == "coupled":
            raise ConfigError(
                "--optimizer adamw is Adam with decoupled weight decay: for coupled weight "
                "decay use --optimizer adam"
            )
        if not self.warmup_epochs < self.epochs:
            raise ConfigError(f"--warmup-epochs must be below --epochs, got {self.warmup_epochs}")
        split = self.validation_split
        if split >= 1 and split != int(split):
            raise ConfigError(
                "--validation-split must be 0 (none), a share in (0, 1) or a whole number of "
                f"images, got {split:g}"
            )
        if self.lcr_reference == "teacher" and not self.teacher and self.lcr_lambda > 0:
            raise ConfigError(
                "--lcr-reference teacher needs --teacher DIR (train one with --full-precision)"
            )
        if self.teacher and not os.path.exists(self.teacher):
            raise ConfigError(f"--teacher {self.teacher} does not exist: give a run directory")


def default_run_name(config: TrainConfig) -> str:
    """A run directory name from the settings that tell runs apart most often.

    Example:
        >>> default_run_name(TrainConfig(lcr_lambda=0.5, seed=3))
        'resnet20_digits_1w1a_lambda0.5_seed3'
    """
    dataset = config.dataset.split(":", 1)[0]
    if ":" in config.dataset:
        dataset += "-" + os.path.basename(os.path.normpath(config.dataset.split(":", 1)[1]))
    precision = "fp" if config.full_precision else config.precision
    return f"{config.model}_{dataset}_{precision}_lambda{config.lcr_lambda:g}_seed{config.seed}"


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of a ``train.py`` command line (not validated)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    return build_config(parser.parse_args(argv), TrainConfig)
