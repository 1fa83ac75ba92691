"""The settings of one training run: :class:`TrainConfig`.

Every field is a flag of ``lcr-train`` and a key of its YAML recipes (see
:mod:`lcr_larq.settings`); every choice is read from its owner: the
registries of models, weight quantizers and datasets, the loss forms of
:mod:`lcr_larq.spectral`, the optimizers and schedules of
:mod:`lcr_larq.optimizers`. The options of a registry entry are declared in
its own file, as a settings dataclass the entry names (``options``), and
:class:`TrainConfig` takes them whole from the registries: the ResNets'
(:class:`models.resnet_cifar.ResNetOptions`) after the network, ProxConnect's
(:class:`lcr_larq.quantizers.proxconnect.ProxConnectOptions`) after the
weight quantizer. A :class:`TrainConfig` is checked when it is made, its
``--dataset`` parsed then (:attr:`TrainConfig.dataset_spec`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lcr_larq import optimizers
from lcr_larq.data import INPUT_SIZES, DatasetSpec, dataset_names, dataset_spec, resolve_input_size
from lcr_larq.errors import ConfigError
from lcr_larq.graph import DEFAULT_EVERY, DEFAULT_SAMPLES, REFERENCES
from lcr_larq.quantizers import PRECISIONS, WEIGHT_QUANTIZERS
from lcr_larq.registry import Registry
from lcr_larq.settings import Settings, add_arguments, build_config, setting, split_lists
from lcr_larq.spectral import LOSS_FORMS
from lcr_larq.training.architectures import MODELS, build_model
from lcr_larq.training.distribute import STRATEGIES

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "RUNS_DIR", "SEED_MAX", "TrainConfig", "default_run_name", "entry_options", "input_size_note",
    "parse_args", "with_input_size", "build_network",
]

SEED_MAX = 2**32 - 1  # TensorFlow's and numpy's seed range
RUNS_DIR = "runs"


def entry_options(registry: Registry) -> tuple[type, ...]:
    """The options dataclasses of a registry's entries (their ``options``), each
    once: TrainConfig's bases, so that their fields are flags and recipe keys.

    Example:
        >>> [cls.__name__ for cls in entry_options(WEIGHT_QUANTIZERS)]
        ['ProxConnectOptions']
    """
    found: list[type] = []
    for _, entry in registry.items():
        if entry.options is not None and entry.options not in found:
            found.append(entry.options)
    return tuple(reversed(found))  # bases: the last one's fields come first


# TrainConfig's own settings in three groups, between which the options of the
# registry entries come (their fields keep the order of lcr-train's flags and recipes).
@dataclass
class _Network(Settings):
    """What is trained: the architecture, the data, the precision."""

    model: str = setting("resnet20", lambda: "architecture: " + ", ".join(MODELS),
                         choices=MODELS, metavar="NAME")
    dataset: str = setting(
        "digits", lambda: "one of " + ", ".join(dataset_names()) + " (digits: offline)"
    )
    data_dir: str | None = setting(None, "TFDS data directory (or manual ImageNet download)")
    precision: str = setting(
        "1w1a", "1w1a (binary weights and activations) or 1w32a", choices=PRECISIONS
    )
    full_precision: bool = setting(False, "train the full-precision counterpart (LCR off)")


@dataclass
class _WeightQuantizer(Settings):
    """The weight quantizer of the ResNets."""

    weight_quantizer: str = setting(
        "irnet",
        lambda: "binary weight quantizer of the ResNets: " + "; ".join(
            f"{name} ({entry.description})" for name, entry in WEIGHT_QUANTIZERS.items()),
        choices=WEIGHT_QUANTIZERS,
    )


@dataclass
class _Training(Settings):
    """How it is trained: input size, LCR, optimization, computation, the run directory."""

    input_size: int | None = setting(
        None, "resize images to this square size (default: the dataset's own size, raised to "
        "the model's minimum)", low=INPUT_SIZES[0], high=INPUT_SIZES[1],
    )
    lcr_lambda: float = setting(
        4.0, "LCR strength λ (0 trains the plain BNN)", low=0, high=1e3
    )
    lcr_beta: float = setting(
        2.0, "LCR block weighting β: block k of K weighs β^(k−K)", above=1, high=100
    )
    lcr_reference: str = setting(
        "latent", "full-precision reference: latent or teacher", choices=REFERENCES
    )
    lcr_form: str = setting(
        "ratio", "LCR loss form: ratio (paper) or mse (public code)", choices=LOSS_FORMS
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
        choices=optimizers.LR_UPDATES,
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
        choices=STRATEGIES,
    )
    chief_timeout: float = setting(
        60.0, "a worker that is not the chief (--strategy multiworker, or an lcr-tune worker): "
        "seconds it waits for the chief to answer before it gives up, naming the chief's "
        "address", above=0, high=86_400, recipe=False,
    )
    mixed_precision: str = setting(
        "off",
        "compute in 16 bits on float32 variables (Keras' mixed precision): float16 (dynamic "
        "loss scaling; fast on NVIDIA GPUs with Tensor Cores, slow on CPUs without AVX-512 "
        "FP16) or bfloat16 (float32's range, no loss scaling; TPUs, NVIDIA GPUs from Ampere "
        "on, CPUs with AVX-512 BF16 or AMX); LCR's math and the logits stay float32",
        choices=tuple(optimizers.MIXED_PRECISION),
    )
    jit_compile: bool = setting(
        False, "compile the training step with XLA (Keras' jit_compile): fused ops; the "
        "first step waits for the compilation"
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


@dataclass
class TrainConfig(_Training, *entry_options(WEIGHT_QUANTIZERS), _WeightQuantizer,
                  *entry_options(MODELS), _Network):
    """All settings of one training run (``lcr-train``'s flags), checked when
    made: the run's own and the options of the registry entries that have
    some, each declared where its entry is: the architectures' after the
    network (the ResNets': :class:`models.resnet_cifar.ResNetOptions`), the
    weight quantizers' after the weight quantizer (ProxConnect's:
    :class:`lcr_larq.quantizers.proxconnect.ProxConnectOptions`). An entry
    registered after this module is imported (a user's, at run time) has its
    options' defaults."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> str:
        """``output_dir``, or the name derived from the settings."""
        return self.output_dir or os.path.join(RUNS_DIR, default_run_name(self))

    @property
    def dataset_spec(self) -> DatasetSpec:
        """``--dataset`` parsed when the settings were made: what the loader takes."""
        return self._dataset_spec

    @property
    def uses_lcr(self) -> bool:
        """Whether the run trains with LCR: a binary network and λ > 0.

        Example:
            >>> TrainConfig().uses_lcr, TrainConfig(lcr_lambda=0).uses_lcr
            (True, False)
            >>> TrainConfig(full_precision=True).uses_lcr
            False
        """
        return not self.full_precision and self.lcr_lambda > 0

    def check(self) -> None:
        """Rules between settings (each setting alone is checked by its field)."""
        self._dataset_spec = dataset_spec(self.dataset)
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
        if self.lcr_reference == "teacher" and not self.teacher and self.uses_lcr:
            raise ConfigError(
                "--lcr-reference teacher needs --teacher DIR (train one with --full-precision)"
            )


def build_network(
    config: TrainConfig, input_shape, num_classes: int, quantized: bool | None = None
) -> tf.keras.Model:
    """The network of a run's settings, without LCR: the one mapping from a
    :class:`~lcr_larq.training.TrainConfig` to :func:`models.build_model`.

    ``quantized`` (default: not ``config.full_precision``) ``False`` gives the
    full-precision counterpart. The weight quantizer takes its options from
    ``config`` (e.g. ``prox_gradient``).

    Example:
        >>> build_network(TrainConfig(model="resnet8"), (16, 16, 1), 10).name
        'resnet8_1w1a'
        >>> build_network(TrainConfig(model="resnet8"), (16, 16, 1), 10, quantized=False).name
        'resnet8_fp_1w1a'
    """
    return build_model(
        config.model,
        input_shape,
        num_classes,
        precision=config.precision,
        quantized=not config.full_precision if quantized is None else quantized,
        bireal=config.bireal,
        weight_quantizer=config.weight_quantizer,
        shortcut=None if config.shortcut == "auto" else config.shortcut,
        quantizer_settings=config,
    )



def with_input_size(config: TrainConfig) -> TrainConfig:
    """``config`` with the ``input_size`` its run's images are served at:
    ``--input-size`` when given, else the dataset's own size raised to the
    model's minimum (:func:`lcr_larq.data.resolve_input_size`); unchanged for
    a dataset of the user's files, served at the size of its images.

    Example:
        >>> with_input_size(TrainConfig(model="birealnet")).input_size
        32
        >>> with_input_size(TrainConfig(model="resnet20", input_size=48)).input_size
        48
    """
    size = resolve_input_size(config.dataset_spec, MODELS[config.model].min_input_size,
                              config.input_size)
    return config if size == config.input_size else dataclasses.replace(config, input_size=size)


def input_size_note(config: TrainConfig) -> str | None:
    """One line when the model raised the dataset's own size (no
    ``--input-size`` given and the dataset smaller than the model's minimum),
    else None.

    Example:
        >>> input_size_note(TrainConfig(model="quicknet"))
        'quicknet needs images of at least 64×64: digits (16×16) resized to 64×64 \
(--input-size N for another size)'
        >>> print(input_size_note(TrainConfig(model="resnet20")))
        None
    """
    shape = config.dataset_spec.source.input_shape
    least = MODELS[config.model].min_input_size
    if config.input_size is not None or shape is None or shape[0] >= least:
        return None
    return (f"{config.model} needs images of at least {least}×{least}: {config.dataset} "
            f"({shape[0]}×{shape[1]}) resized to {least}×{least} (--input-size N for another "
            "size)")


def default_run_name(config: TrainConfig) -> str:
    """A run directory name from the settings that tell runs apart most often.

    Example:
        >>> default_run_name(TrainConfig(lcr_lambda=0.5, seed=3))
        'resnet20_digits_1w1a_lambda0.5_seed3'
    """
    spec = config.dataset_spec
    dataset = spec.name
    if spec.path is not None:
        dataset += "-" + os.path.basename(os.path.normpath(spec.path))
    precision = "fp" if config.full_precision else config.precision
    return f"{config.model}_{dataset}_{precision}_lambda{config.lcr_lambda:g}_seed{config.seed}"


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of an ``lcr-train`` command line.

    Example:
        >>> config = parse_args(["--model", "resnet18", "--lcr-lambda", "2"])
        >>> config.model, config.lcr_lambda, config.lcr_beta
        ('resnet18', 2.0, 2.0)
        >>> parse_args(["--lcr-lambda", "nan"])
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: --lcr-lambda must be a finite number, got nan
    """
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    return build_config(parser.parse_args(split_lists(argv or [], parser)), TrainConfig)
