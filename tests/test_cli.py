"""The one shell of the commands and the one config system behind every command."""

import argparse
import dataclasses
import importlib
import os
import re
import subprocess
import sys

import pytest

from lcr_larq import cli
from lcr_larq import settings as cfg
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.training import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "lcr_larq")


@dataclasses.dataclass
class Example:
    count: int = cfg.setting(3, "a count", low=1, high=10)
    rate: float = cfg.setting(0.5, "a rate", above=0, below=1)
    kind: str = cfg.setting("a", "a kind", choices=("a", "b"))
    pair: tuple[float, float] = cfg.setting((1.0, 2.0), "a pair")
    names: tuple[str, ...] = cfg.setting(("x",), "names")
    maybe: int | None = cfg.setting(None, "optional", low=0)
    flag: bool = cfg.setting(False, "a switch")
    local: bool = cfg.setting(False, "not in recipes", recipe=False)

    def check(self):
        if self.pair[0] > self.pair[1]:
            raise ConfigError("--pair needs LOW <= HIGH")


def parse(argv, cls=Example):
    parser = cli.parser("example", "an example", cls)
    return cfg.build_config(parser.parse_args(argv), cls)


def test_flags_recipes_and_defaults_compose(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("count: 7\nnames: [u, v]\npair: [0.5, 4]\nmaybe: null\n")
    config = cfg.validate(parse(["--config", str(recipe), "--count", "9", "--flag"]))
    assert (config.count, config.names, config.pair, config.maybe, config.flag) == (
        9, ("u", "v"), (0.5, 4.0), None, True)
    cfg.save_recipe(config, str(tmp_path / "back.yaml"))
    assert cfg.load_recipe(str(tmp_path / "back.yaml"), Example) == {
        "count": 9, "rate": 0.5, "kind": "a", "pair": (0.5, 4.0), "names": ("u", "v"),
        "maybe": None, "flag": True,
    }  # "local" is a setting of the command, not of the recipe


@pytest.mark.parametrize("argv, needle", [
    (["--count", "0"], "--count must be >= 1, got 0"),
    (["--count", "99999999999999999999999"], "--count must be <= 10"),
    (["--rate", "nan"], "--rate must be a finite number, got nan"),
    (["--rate", "inf"], "--rate must be a finite number, got inf"),
    (["--rate", "1"], "--rate must be < 1"),
    (["--kind", "c"], "--kind must be one of ['a', 'b'], got 'c'"),
    (["--pair", "3", "1"], "--pair needs LOW <= HIGH"),
    (["--maybe", "-1"], "--maybe must be >= 0"),
])
def test_every_bad_value_is_a_config_error_naming_the_flag(argv, needle):
    with pytest.raises(ConfigError) as error:
        cfg.validate(parse(argv))
    assert needle in str(error.value)


@pytest.mark.parametrize("text, needle", [
    ("count: null\n", "key 'count' needs a whole number, got None"),
    ("count: true\n", "key 'count' needs a whole number, got True"),
    ("count: 2.5\n", "key 'count' needs a whole number"),
    ("count: 99999999999999999999999\n", "key 'count' must be <= 10"),
    ("rate: .nan\n", "key 'rate' must be a finite number"),
    ("flag: 1\n", "key 'flag' needs true or false"),
    ("names: 3\n", "key 'names' needs one or more values, each a text"),
    ("pair: [1]\n", "key 'pair' needs 2 values"),
    ("local: true\n", "unknown key 'local'"),
    ("- a list\n", "must hold a mapping of settings"),
])
def test_recipe_values_are_checked_strictly(tmp_path, text, needle):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        cfg.load_recipe(str(path), Example)
    assert needle in str(error.value) and "r.yaml" in str(error.value)


def test_a_recipe_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"\xff\xfe" + "count: 3".encode("utf-16-le"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        cfg.load_recipe(str(path), Example)


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(["--count", "abc"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: argument --count: --count needs a whole number, got 'abc'")


def test_run_turns_user_errors_and_interrupts_into_one_line(capsys):
    assert cli.run(lambda: None) == 0
    def fails():
        raise RunError("the run is gone: train it again")
    assert cli.run(fails) == 2
    assert capsys.readouterr().err == "error: the run is gone: train it again\n"
    def interrupted():
        raise KeyboardInterrupt
    assert cli.run(interrupted, "stopped: rerun to resume") == 130
    assert capsys.readouterr().err == "\nstopped: rerun to resume\n"


def test_save_report_writes_standard_json_and_names_the_flag(tmp_path):
    path = cli.save_report({"loss": float("nan"), "x": [float("inf"), 1.0]},
                           str(tmp_path / "r.json"))
    assert open(path).read().replace(" ", "").replace("\n", "") == '{"loss":null,"x":[null,1.0]}'
    with pytest.raises(ConfigError.__mro__[1], match="check --output"):
        cli.save_report({}, "/proc/none/r.json")


def test_every_float_setting_of_train_is_finite_checked():
    floats = [f for f in dataclasses.fields(TrainConfig)
              if cfg.kinds(TrainConfig)[f.name].base is float]
    assert len(floats) >= 8
    for f in floats:
        with pytest.raises(ConfigError, match="finite"):
            cfg.check_fields(dataclasses.replace(TrainConfig(), **{f.name: float("nan")}))


# ------------------------------------------------------------------- the architecture
def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


MODULES = dict(_modules())


PRIVATE = re.compile(r"\b(kt|keras_tuner|lce|larq_compute_engine)(\.[A-Za-z0-9_]+)*\._[A-Za-z]")


def test_no_private_attribute_of_keras_tuner_or_lce():
    for module, path in MODULES.items():
        text = open(path).read()
        assert not PRIVATE.search(text), (module, PRIVATE.search(text).group(0))
        assert "larq_compute_engine.mlir" not in text and "_tf_tfl_flatbuffer" not in text
        assert "_get_checkpoint_fname" not in text and "_random_values" not in text
        assert "_populate_initial_space" not in text


@pytest.mark.parametrize("name", cli.commands())
def test_every_command_has_a_help_naming_only_its_flags(name, capsys):
    """In-process: what ``--help`` prints comes from the command's module alone."""
    module = importlib.import_module(f"lcr_larq.cli.{name}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith(f"usage: lcr-{name}")
    flags = set(re.findall(r"--[a-z][a-z0-9-]+", out))
    # --help names no flag that does not exist
    defined = set(re.findall(r"^\s+(--[a-z][a-z0-9-]+)", out, re.M))
    assert flags <= defined | {"--help"}, flags - defined


def test_a_console_script_starts_quietly():
    """The installed script ``lcr-<name>`` runs the command, and its start-up shows
    nothing of TensorFlow's (lcr_larq.compat.started_as_command)."""
    script = os.path.join(os.path.dirname(sys.executable), "lcr-plots")
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: lcr-plots")
    assert proc.stderr == ""


def test_argparse_namespace_is_only_the_given_flags():
    parser = cli.parser("example", "", Example)
    given = cfg.given_flags(parser.parse_args(["--count", "2"]), Example)
    assert given == {"count"} and isinstance(parser, argparse.ArgumentParser)
