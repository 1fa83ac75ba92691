"""Experiment settings: one dataclass, its command line and its YAML recipes.

Every field of :class:`TrainConfig` is a ``--flag`` of ``train.py`` (``_`` →
``-``) and a key of a recipe in ``configs/``. A recipe is loaded with
``--config FILE``; flags given on the command line override it.

Example:
    >>> config = parse_args(["--model", "resnet18", "--lcr-lambda", "2"])
    >>> config.model, config.lcr_lambda, config.lcr_beta
    ('resnet18', 2.0, 2.0)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """Bad settings; the message says which and how to fix them."""


def _opt(default, help: str, **extra):  # noqa: A002
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """All settings of one training run."""

    model: str = _opt("resnet20", "architecture (see --list-models)")
    dataset: str = _opt(
        "digits", "digits (offline), cifar10, cifar100, imagenet2012, folder:PATH or npz:PATH"
    )
    data_dir: str | None = _opt(None, "TFDS data directory (or manual ImageNet download)")
    precision: str = _opt("1w1a", "1w1a (binary weights and activations) or 1w32a")
    full_precision: bool = _opt(False, "train the full-precision counterpart (LCR off)")
    bireal: bool = _opt(False, "real-valued shortcut around every binary conv (Bi-Real)")
    shortcut: str = _opt(
        "auto",
        "downsampling shortcut of the ResNets: zero-pad (option A, IR-Net's ResNet-20), conv "
        "(strided 1x1 conv + BN, IR-Net's ResNet-18), avgpool-conv (Bi-Real's); auto: the "
        "paper baselines' (zero-pad for resnet20, conv for CIFAR resnet18/34, avgpool-conv "
        "from 100 px)",
    )
    weight_quantizer: str = _opt(
        "irnet", "binary weight quantizer: irnet, ste_sign or proxconnect"
    )
    prox_rho_end: float = _opt(20.0, "ProxConnect: final ρ of the linear schedule (from 0)")
    prox_gradient: str = _opt("prox", "ProxConnect backward: prox (dL_ρ/dw) or ste")
    prox_hard_epochs: int = _opt(1, "ProxConnect: final epochs with the hard sign")
    input_size: int | None = _opt(None, "resize images to this square size")
    lcr_lambda: float = _opt(4.0, "LCR strength λ ≥ 0 (0 trains the plain BNN)")
    lcr_beta: float = _opt(2.0, "LCR block weighting β > 1")
    lcr_reference: str = _opt("latent", "full-precision reference: latent or teacher")
    lcr_form: str = _opt("ratio", "LCR loss form: ratio (paper) or mse (public code)")
    power_iterations: int = _opt(5, "power-iteration steps per spectral norm")
    lcr_samples: int = _opt(32, "estimate L_lip on this many samples per batch (0: all)")
    teacher: str | None = _opt(None, "full-precision model dir or .keras file (teacher mode)")
    epochs: int = _opt(40, "training epochs")
    batch_size: int = _opt(128, "global batch size")
    steps_per_epoch: int | None = _opt(None, "limit the steps of each epoch")
    validation_split: float = _opt(
        0.1,
        "held out of the training data and evaluated every epoch: a share in (0, 1) "
        "(stratified for in-memory data) or a number of images (the paper holds out 10000 "
        "CIFAR images); 0: none",
    )
    bn_recalibration_batches: int = _opt(
        100,
        "after training, set every BN's moving mean and variance to the exact average over "
        "this many training batches (no augmentation) before testing and saving; 0: keep "
        "the moving averages",
    )
    optimizer: str = _opt(
        "sgd", "sgd (PyTorch's SGD, the papers'), adam (PyTorch's Adam) or adamw"
    )
    lr: float = _opt(0.1, "initial learning rate")
    lr_schedule: str = _opt("cosine", "learning-rate decay to 0: cosine, linear or constant")
    lr_update: str = _opt(
        "epoch",
        "when the learning rate changes: epoch (once per epoch, as the papers' PyTorch "
        "schedulers) or step",
    )
    warmup_epochs: int = _opt(0, "linear learning-rate warm-up epochs before the decay")
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(1e-4, "weight decay")
    weight_decay_mode: str = _opt(
        "auto",
        "coupled: an L2 term added to the gradient before momentum (PyTorch's SGD and Adam "
        "weight_decay, the papers'); decoupled: w -= lr*wd*w outside the optimizer "
        "(Keras' weight_decay, AdamW); auto: decoupled for adamw, coupled otherwise",
    )
    weight_decay_on: str = _opt(
        "all",
        "all (every trainable variable, PyTorch's default) or conv-kernels "
        "(convolution kernels only, as ReActNet)",
    )
    label_smoothing: float = _opt(0.0, "label smoothing ε of the cross entropy, in [0, 1)")
    strategy: str = _opt("default", "tf.distribute strategy: default, mirrored, multiworker")
    seed: int = _opt(0, "random seed")
    output_dir: str = _opt("runs/latest", "where results, checkpoints and the model go")
    verbose: int = _opt(1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    "precision": ("1w1a", "1w32a"),
    "shortcut": ("auto", "zero-pad", "conv", "avgpool-conv"),
    "optimizer": ("sgd", "adam", "adamw"),
    "lr_schedule": ("cosine", "linear", "constant"),
    "lr_update": ("epoch", "step"),
    "weight_decay_mode": ("auto", "coupled", "decoupled"),
    "weight_decay_on": ("all", "conv-kernels"),
    "weight_quantizer": ("irnet", "ste_sign", "proxconnect"),
    "prox_gradient": ("prox", "ste"),
    "lcr_reference": ("latent", "teacher"),
    "lcr_form": ("ratio", "mse"),
    "strategy": ("default", "mirrored", "multiworker"),
    "verbose": (0, 1, 2),
}


def validate(config: TrainConfig) -> TrainConfig:
    """Checks every setting; raises :class:`ConfigError` naming the fix."""
    from lcr_larq import data
    from models import MODELS

    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} must be one of {list(choices)}, got {getattr(config, key)!r}"
            )
    if config.model not in MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of {sorted(MODELS)}")
    kind = config.dataset.split(":", 1)[0]
    if kind not in data.LOADERS:
        raise ConfigError(
            f"unknown dataset {config.dataset!r}; choose one of {data.dataset_names()}"
        )
    if config.lcr_lambda < 0:
        raise ConfigError(
            f"--lcr-lambda must be >= 0 (0 trains the plain BNN), got {config.lcr_lambda}"
        )
    if config.lcr_beta <= 1:
        raise ConfigError(f"--lcr-beta must be > 1, got {config.lcr_beta}")
    for key in ("power_iterations", "epochs", "batch_size"):
        if getattr(config, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(config, key)}")
    if config.weight_quantizer == "proxconnect" and (
        config.prox_rho_end < 0 or not 0 <= config.prox_hard_epochs < config.epochs
    ):
        raise ConfigError(
            "--prox-rho-end must be >= 0 and 0 <= --prox-hard-epochs < --epochs"
        )
    if config.lcr_samples < 0:
        raise ConfigError(f"--lcr-samples must be >= 0 (0: every sample), got {config.lcr_samples}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise ConfigError(f"--steps-per-epoch must be >= 1, got {config.steps_per_epoch}")
    if config.input_size is not None and config.input_size < 8:
        raise ConfigError(f"--input-size must be >= 8, got {config.input_size}")
    if config.lr <= 0 or config.weight_decay < 0 or not 0 <= config.momentum < 1:
        raise ConfigError("--lr must be > 0, --weight-decay >= 0 and 0 <= --momentum < 1")
    if config.optimizer == "adamw" and config.weight_decay_mode == "coupled":
        raise ConfigError(
            "--optimizer adamw is Adam with decoupled weight decay: for coupled weight decay "
            "use --optimizer adam"
        )
    if not 0 <= config.warmup_epochs < config.epochs:
        raise ConfigError(
            f"--warmup-epochs must be >= 0 and below --epochs, got {config.warmup_epochs}"
        )
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"--label-smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.bn_recalibration_batches < 0:
        raise ConfigError(
            "--bn-recalibration-batches must be >= 0 (0 keeps the moving averages), got "
            f"{config.bn_recalibration_batches}"
        )
    split = config.validation_split
    if split < 0 or (split >= 1 and split != int(split)):
        raise ConfigError(
            "--validation-split must be 0 (none), a share in (0, 1) or a whole number of "
            f"images, got {split}"
        )
    if config.lcr_reference == "teacher" and not config.teacher and config.lcr_lambda > 0:
        raise ConfigError(
            "--lcr-reference teacher needs --teacher DIR (train one with --full-precision)"
        )
    if config.teacher and not os.path.exists(config.teacher):
        raise ConfigError(f"--teacher {config.teacher} does not exist: give a model dir")
    return config


def _parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _field_type(f: dataclasses.Field):
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    for name, parser in (("bool", _parse_bool), ("int", int), ("float", float)):
        if kind.startswith(name):
            return parser
    return str


def add_arguments(parser: argparse.ArgumentParser, cls=TrainConfig) -> None:
    """Adds one ``--flag`` per field of ``cls`` (defaults left to the dataclass)."""
    parser.add_argument("--config", help="YAML recipe; flags given here override it")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f)
        if kind is _parse_bool:
            parser.add_argument(
                flag, nargs="?", const=True, type=_parse_bool,
                default=argparse.SUPPRESS, help=f.metadata.get("help"),
            )
        else:
            parser.add_argument(
                flag, type=kind, default=argparse.SUPPRESS,
                help=f"{f.metadata.get('help')} (default: {f.default})",
            )


def load_recipe(path: str, cls=TrainConfig) -> dict[str, Any]:
    """Reads a YAML recipe; unknown keys and wrongly typed values are refused."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path} does not exist")
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    recipe = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{path}: unknown key {key!r}; valid keys: {sorted(fields)}")
        recipe[name] = _coerce(path, name, value, fields[name])
    return recipe


def _coerce(path: str, name: str, value, f: dataclasses.Field):
    if value is None:
        return None
    kind = _field_type(f)
    try:
        if kind is _parse_bool:
            return value if isinstance(value, bool) else _parse_bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        raise ConfigError(
            f"{path}: key {name!r} needs a {kind.__name__.strip('_')} value, got {value!r}"
        ) from None


def build_config(namespace: argparse.Namespace, cls=TrainConfig):
    """Defaults, then the recipe, then the command-line flags."""
    values = {}
    if getattr(namespace, "config", None):
        values.update(load_recipe(namespace.config, cls))
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({k: v for k, v in vars(namespace).items() if k in names})
    return cls(**values)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of a ``train.py`` command line (not validated)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return build_config(parser.parse_args(argv))


def save_recipe(config, path: str) -> None:
    """Writes ``config`` as a YAML recipe that ``--config`` reads back."""
    with open(path, "w") as handle:
        yaml.safe_dump(dataclasses.asdict(config), handle, sort_keys=False)
