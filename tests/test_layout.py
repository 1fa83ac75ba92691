"""The layout of the code: one owner for every list of names, imports that flow one way.

The layers themselves (commands -> tools -> models -> the core) are import-linter
contracts in setup.cfg, checked by ``make lint``; here: what import-linter does not
see (doctests, imports inside functions) and the registries at work, extended from
this file alone.
"""

import ast
import doctest
import importlib
import importlib.metadata
import json
import os
import pkgutil
import re

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import lcr_larq
import models
from lcr_larq import cli
from lcr_larq.cli import train as train_command
from lcr_larq.data import DATASETS, Dataset, DatasetSource, from_arrays, register_dataset
from lcr_larq.quantizers import WEIGHT_QUANTIZERS, WeightQuantizer, register_weight_quantizer
from lcr_larq.training import TrainConfig
from models import MODELS, register_model
from models.resnet_cifar import resnet_cifar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The tools and commands: the only part of lcr_larq that may import ``models``.
TOOLS = ("lcr_larq.cli", "lcr_larq.experiments", "lcr_larq.analysis", "lcr_larq.training")


def _modules(package) -> list[str]:
    return [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def _core_modules() -> list[str]:
    return ["lcr_larq", *(m for m in _modules(lcr_larq) if not m.startswith(TOOLS))]


def test_the_core_doctests_import_no_architecture():
    """import-linter reads imports, not docstrings: a core doctest that builds a model
    of ``models`` would make the core need the architectures."""
    finder = doctest.DocTestFinder()
    found = 0
    for name in _core_modules():
        for test in finder.find(importlib.import_module(name)):
            for example in test.examples:
                found += 1
                assert not re.search(r"\b(from|import) models\b", example.source), (
                    f"{test.name}: {example.source.strip()}"
                )
    assert found > 50  # the core's doctests were read


def _function_level_imports(path: str) -> list[str]:
    tree = ast.parse(open(path).read())
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [f"{path}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in ("lcr_larq", "models")]
    return found


def test_project_imports_sit_at_the_top_of_a_file():
    """Every edge between the project's modules is visible where a reader looks."""
    lazy = []
    for package in ("lcr_larq", "models", "benchmarks"):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            lazy += [i for f in files if f.endswith(".py")
                     for i in _function_level_imports(os.path.join(folder, f))]
    assert not lazy, lazy


def test_the_console_scripts_are_the_commands_folder():
    """setup.py, ``--help`` and this suite read one list: the modules of lcr_larq/cli/."""
    scripts = {
        entry.name: entry.value
        for entry in importlib.metadata.entry_points(group="console_scripts")
        if entry.value.startswith("lcr_larq.cli.")
    }
    assert scripts == {f"lcr-{name}": f"lcr_larq.cli.{name}:main" for name in cli.commands()}
    assert "study" in cli.commands()
    epilog = cli.parser("lcr-train", "").epilog
    assert all(f"lcr-{name}" in epilog for name in cli.commands() if name != "train")


# ------------------------------------------------------------------ extending in one file
TOY_EPOCHS = []


class ToyQuantizer(lq.quantizers.Quantizer):
    """Weights quantized to ±scale, scale a setting: the toy's own state."""

    precision = 1

    def __init__(self, scale: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return self.scale * lq.math.sign(inputs)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


class ToySchedule(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        TOY_EPOCHS.append(epoch)


class ToyDigits(DatasetSource):
    """Four classes of random 8×8 images with a learnable bright corner."""

    name = "toy"
    description = "four classes of 8x8 images, made up in the test"
    input_shape = (8, 8, 1)
    num_classes = 4

    def load(self, request) -> Dataset:
        rng = np.random.default_rng(0)
        y = np.arange(200) % 4
        x = rng.integers(0, 64, size=(200, 8, 8, 1)).astype(np.uint8)
        x[np.arange(200), 2 * y, 2 * y, 0] = 255
        return from_arrays("toy", x[:160], y[:160], x[160:], y[160:],
                           batch_size=request.batch_size, seed=request.seed,
                           validation_split=request.validation_split)


def toy_model(input_shape, num_classes, spec, bireal=False, shortcut=None):
    return resnet_cifar(8, input_shape, num_classes, spec, bireal, shortcut)


@pytest.fixture
def toys():
    """A toy quantizer, model and dataset, registered here and gone afterwards."""
    TOY_EPOCHS.clear()
    tf.keras.utils.get_custom_objects()["ToyQuantizer"] = ToyQuantizer
    register_weight_quantizer(WeightQuantizer(
        "toy", "±0.5 weights", kernel=lambda settings: ToyQuantizer(0.5),
        activation=lq.quantizers.SteSign, clip=1.0,
        schedule=lambda model, epochs, steps, settings: ToySchedule(),
    ))
    register_model("toynet", "a toy ResNet-8", min_input_size=4, published_input_size=8,
                   resnet_options=True)(toy_model)
    register_dataset(ToyDigits)
    yield
    WEIGHT_QUANTIZERS.remove("toy")
    MODELS.remove("toynet")
    DATASETS.remove("toy")
    del tf.keras.utils.get_custom_objects()["ToyQuantizer"]


def test_a_quantizer_a_model_and_a_dataset_registered_here_train_through_the_flags(
    toys, tmp_path, capsys
):
    assert train_command.main(["--list-models"]) == 0
    assert "a toy ResNet-8" in capsys.readouterr().out
    out = tmp_path / "run"
    code = train_command.main([
        "--model", "toynet", "--dataset", "toy", "--weight-quantizer", "toy", "--epochs", "2",
        "--batch-size", "32", "--lcr-samples", "8", "--output-dir", str(out), "--verbose", "0",
    ])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "toy" and results["weight_quantizer"] == "toy"
    assert results["model"].startswith("resnet8") and results["test_size"] == 40
    assert TOY_EPOCHS == [0, 1]  # the quantizer's schedule trained with it
    bnn = tf.keras.models.load_model(out / "bnn.keras", compile=False)
    kernels = [layer.kernel_quantizer for layer in bnn.layers
               if getattr(layer, "kernel_quantizer", None) is not None]
    assert kernels and all(isinstance(q, ToyQuantizer) for q in kernels)
    # the toy's ±0.5 weights are what the deployed network computes with
    conv = next(layer for layer in bnn.layers if getattr(layer, "kernel_quantizer", None))
    with lq.context.quantized_scope(True):
        assert set(np.unique(np.abs(tf.convert_to_tensor(conv.kernel).numpy()))) == {0.5}


def test_unregistered_names_are_one_line_errors_listing_the_choices(toys):
    with pytest.raises(lcr_larq.errors.ConfigError, match="toynet"):
        TrainConfig(model="nonet")
    with pytest.raises(lcr_larq.errors.ConfigError, match="toy"):
        TrainConfig(weight_quantizer="none")
    with pytest.raises(lcr_larq.errors.ConfigError, match="choose one of: .*toy"):
        TrainConfig(dataset="nodata")
    assert "toynet" in models.MODELS and "toy" in DATASETS
