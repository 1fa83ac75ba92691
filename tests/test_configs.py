"""The YAML recipes in configs/: they parse, hold the paper's settings and build."""

import glob
import os

import pytest
import yaml

import train
from lcr_larq import lcr_layer
from lcr_larq import settings as cfg
from lcr_larq.training import TrainConfig, build_training_model, parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))

# What each dataset's loader reports (see tests/test_data.py).
DATASETS = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100),
            "imagenet2012": ((224, 224, 3), 1000)}
# The paper's training settings (Sec. 4), in PyTorch's semantics: SGD with
# coupled weight decay on every parameter, the schedule stepped per epoch.
PYTORCH_SGD = {"optimizer": "sgd", "weight_decay_mode": "coupled", "weight_decay_on": "all",
               "lr_schedule": "cosine", "lr_update": "epoch", "momentum": 0.9}
PAPER = {
    "cifar10": {"epochs": 400, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4,
                "validation_split": 10000, **PYTORCH_SGD},
    "imagenet2012": {"epochs": 120, "batch_size": 256, "lr": 0.1, **PYTORCH_SGD},
    # ReActNet's own code (MobileNet-based ReActNet-A): Adam, linear decay.
    "reactnet": {"epochs": 128, "batch_size": 256, "lr": 1.25e-3, "optimizer": "adam",
                 "weight_decay": 1e-5, "weight_decay_mode": "coupled",
                 "weight_decay_on": "conv-kernels", "lr_schedule": "linear", "lr_update": "epoch"},
}
# IR-Net's CIFAR ResNet-20 downsamples with zero padding, its ResNet-18 with a 1×1 conv.
CIFAR_SHORTCUTS = {"resnet20": "zero-pad", "resnet18": "conv"}


def recipe_id(path):
    return os.path.splitext(os.path.basename(path))[0]


def load(path) -> TrainConfig:
    return TrainConfig(**cfg.load_recipe(path, TrainConfig))


def test_the_paper_recipes_exist():
    names = {recipe_id(p) for p in RECIPES}
    for expected in ("cifar10_resnet18_lcr", "cifar10_resnet20_lcr", "cifar10_resnet20_1w32a_lcr",
                     "cifar10_resnet20_bireal_lcr", "imagenet_resnet18_lcr",
                     "imagenet_resnet34_lcr", "imagenet_reactnet_lcr"):
        assert expected in names
    assert len(names) == 14


@pytest.mark.parametrize("path", RECIPES, ids=recipe_id)
def test_recipe_parses_with_the_paper_settings(path):
    with open(path) as handle:
        raw = yaml.safe_load(handle)
    config = load(path)
    assert set(raw) <= {f for f in config.to_dict()}
    paper = PAPER["reactnet" if config.model == "reactnet" else config.dataset]
    for key, value in paper.items():
        assert getattr(config, key) == pytest.approx(value), key
    if config.dataset == "cifar10":
        assert config.shortcut == CIFAR_SHORTCUTS[config.model]
    assert config.lcr_lambda > 0 if recipe_id(path).endswith("_lcr") else config.lcr_lambda == 0
    assert config.lcr_beta == 2.0 and config.power_iterations == 5
    assert config.lcr_every == 1  # the paper's loss on every step, not the default schedule
    assert config.output_dir == f"runs/{recipe_id(path)}"
    name = recipe_id(path)
    assert config.precision == ("1w32a" if "1w32a" in name else "1w1a")
    assert config.bireal == ("bireal" in name)
    assert config.model in name


def test_every_lcr_recipe_has_a_baseline_twin():
    by_name = {recipe_id(p): load(p).to_dict() for p in RECIPES}
    for name, settings in by_name.items():
        if not name.endswith("_lcr"):
            continue
        stem = name[: -len("_lcr")]
        twin = by_name.get(f"{stem}_irnet") or by_name.get(f"{stem}_baseline")
        assert twin is not None, name
        differing = {k for k in settings if settings[k] != twin[k]}
        assert differing == {"lcr_lambda", "output_dir"}, (name, differing)


@pytest.mark.parametrize("path", RECIPES, ids=recipe_id)
def test_recipe_builds_its_model(path):
    from models import MODELS

    config = load(path)
    if config.model not in MODELS:
        pytest.skip(f"model {config.model!r} is not registered in models.MODELS yet")
    cfg.validate(config)
    shape, classes = DATASETS[config.dataset]
    model = build_training_model(config, shape, classes)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, classes)
    assert (lcr_layer(model) is not None) == (config.lcr_lambda > 0)
    if lcr_layer(model) is not None:
        assert lcr_layer(model).lcr_lambda == config.lcr_lambda


def test_flags_override_the_recipe():
    path = os.path.join(ROOT, "configs", "cifar10_resnet20_lcr.yaml")
    config = parse_args(["--config", path, "--epochs", "3", "--dataset", "digits"])
    assert (config.epochs, config.dataset) == (3, "digits")
    assert config.lcr_lambda == load(path).lcr_lambda and config.batch_size == 128


@pytest.mark.parametrize(
    "line, needle",
    [("learning_rate: 0.1", "unknown key 'learning_rate'"),
     ("epochs: many", "key 'epochs' needs a whole number"),
     ("bireal: sometimes", "key 'bireal'")],
)
def test_a_bad_recipe_is_refused_naming_the_key(tmp_path, capsys, line, needle):
    path = os.path.join(ROOT, "configs", "cifar10_resnet20_lcr.yaml")
    bad = tmp_path / "bad.yaml"
    key = line.split(":")[0]
    with open(path) as handle:  # the key's own line replaced (a key given twice is refused)
        kept = [row for row in handle if not row.startswith(f"{key}:")]
    bad.write_text("".join(kept) + line + "\n")
    code = train.main(["--config", str(bad), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert needle in err and "bad.yaml" in err
