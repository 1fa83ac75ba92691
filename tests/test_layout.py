"""The layout of the code: one owner for every list of names, imports that flow one way.

The layers themselves (commands -> tools -> models -> the core) are one import-linter
contract in setup.cfg, checked by ``make lint``; here: that it places every module,
what import-linter does not see (doctests, imports inside functions, who imports
``models``), every public module's ``__all__``, and the registries at work, extended
from this file alone.
"""

import ast
import configparser
import doctest
import importlib
import importlib.metadata
import json
import os
import pkgutil
import re
import subprocess
import sys

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


def _layers() -> list[list[str]]:
    """The layers of setup.cfg's import-linter contract, top down, each a list of modules."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = config["importlinter:contract:layers"]["layers"].strip().splitlines()
    return [[name.strip() for name in re.split(r"[|:]", line)] for line in lines]


#: The tools and commands: the layers above ``models``, the only part of lcr_larq
#: that may import it.
TOOLS = tuple(m for layer in _layers()[:[("models" in la) for la in _layers()].index(True)]
              for m in layer)


def _modules(package) -> list[str]:
    return [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_the_layers_contract_places_every_module_of_lcr_larq_and_models():
    """import-linter checks that each layer imports only those below; it cannot check
    (without containers) that a new module has a place, which this does."""
    placed = [m for layer in _layers() for m in layer]
    children = {f"lcr_larq.{info.name}" for info in pkgutil.iter_modules(lcr_larq.__path__)}
    assert sorted(placed) == sorted(children | {"models"}), set(placed) ^ (children | {"models"})
    assert len(placed) == len(set(placed))
    assert "lcr_larq.training" in TOOLS and "lcr_larq.graph" not in TOOLS


def _imports_of(path: str) -> list[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_the_library_reaches_models_from_one_module():
    """``models`` is a generic name: one module imports it, checking first that it is
    lcr-larq's (lcr_larq.training.architectures)."""
    importers = []
    for folder, _, files in os.walk(os.path.join(ROOT, "lcr_larq")):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and any(
                    i == "models" or i.startswith("models.") for i in _imports_of(path)):
                importers.append(os.path.relpath(path, ROOT))
    assert importers == [os.path.join("lcr_larq", "training", "architectures.py")], importers


def _public_modules() -> list[str]:
    found = []
    for package in (lcr_larq, models):
        found += [package.__name__, *(m for m in _modules(package)
                                      if not any(p.startswith("_") for p in m.split(".")))]
    return found


def test_every_public_module_says_what_it_exports():
    """``__all__`` in every public module, naming only what it has."""
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        assert len(exported) == len(set(exported)), name
        missing = [n for n in exported if not hasattr(module, n)]
        assert not missing, (name, missing)


def test_the_package_root_exports_by_its_rule():
    """lcr_larq/__init__.py: every module of the core, and the classes and functions of
    lcr_larq.graph with the layer, the schedules and the BN re-estimation."""
    core = [m for layer in _layers() for m in layer
            if m.startswith("lcr_larq.") and m not in TOOLS]
    modules = {m.split(".", 1)[1] for m in core}
    graph_names = {n for n in lcr_larq.graph.__all__ if not n.isupper()}
    assert set(lcr_larq.__all__) == modules | graph_names | {
        "LipschitzRetention", "schedules_for", "recalibrate_batchnorm"}


def test_a_users_own_models_folder_is_a_one_line_error_naming_it(tmp_path):
    """A project with its own ``models`` package (as yolov5's) beside the command: the
    command refuses it in one line naming the folder, and never runs its code."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "__init__.py").write_text("raise RuntimeError('the user package ran')\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-m", "lcr_larq.cli.train", "--list-models"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"error: {folder} is found first as the package models")
    assert "rename it, or run from a directory that does not hold it" in proc.stderr
    assert "the user package ran" not in proc.stderr and proc.stdout == ""


def test_the_models_check_finds_a_shadowing_module_without_importing_it(tmp_path, monkeypatch):
    from lcr_larq.training import architectures

    assert architectures.models_problem() is None
    (tmp_path / "models.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "models")
    problem = architectures.models_problem()
    assert problem.startswith(f"{tmp_path / 'models.py'} is found first as the package models")
    assert "models" not in sys.modules


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
        "toy", "±0.5 weights", kernel=lambda options: ToyQuantizer(0.5),
        activation=lq.quantizers.SteSign, clip=1.0,
        schedule=lambda model, epochs, steps, options: ToySchedule(),
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
