"""The Keras 2 switch of lcr_larq.compat, in fresh interpreters (it acts at import)."""

import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from lcr_larq import compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDS_SWITCH = compat.version_tuple(tf.__version__) >= (2, 16)


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` with the checkout on the path, ``env`` set, and neither the
    Keras switch nor TensorFlow's log level inherited."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in (compat.LEGACY_KERAS, "TF_CPP_MIN_LOG_LEVEL")}
    environment.update(PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=300)


def test_import_makes_tf_keras_keras_2_for_larq_and_the_children():
    proc = python(
        "import os, lcr_larq, larq, tensorflow as tf\n"
        "print(lcr_larq.compat.tf_keras_version(), tf.keras.Model.__module__,\n"
        "      os.environ.get('TF_USE_LEGACY_KERAS'))"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    version, module, switch = proc.stdout.split()
    assert version.startswith("2.")
    if NEEDS_SWITCH:
        assert module.startswith("tf_keras.") and switch == "1"  # inherited by children


#: A line of TensorFlow's C++ logging: ``2026-01-01 12:00:00.000: I tensorflow/…`` or
#: absl's ``E0000 00:00:… file.cc:1] …``.
TF_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: |[IWEF]\d{4} )[^\n]*\.cc:\d+\]",
                         re.M)
CHANGED_ENVIRONMENT = (
    "import importlib, json, os, sys\n"
    "before, loaded = dict(os.environ), set(sys.modules)\n"
    "for name in {modules!r}:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except ImportError:  # a module a native library put into sys.modules\n"
    "        pass\n"
    "after = dict(os.environ)\n"
    "print(json.dumps([{{k: after.get(k) for k in set(before) | set(after)\n"
    "                    if before.get(k) != after.get(k)}},\n"
    "                  sorted({{m.split('.')[0] for m in set(sys.modules) - loaded}})]))"
)


def test_a_script_keeps_tensorflows_log_lines_and_its_environment_but_the_keras_switch():
    """``import lcr_larq`` changes one global thing: TF_USE_LEGACY_KERAS (neither
    TensorFlow's log level nor stderr while it loads). What its dependencies change
    when imported (TensorFlow sets TF2_BEHAVIOR, …) is measured by importing them
    alone, the switch set beforehand."""
    proc = python(CHANGED_ENVIRONMENT.format(modules=["lcr_larq"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    changed, loaded = json.loads(proc.stdout.splitlines()[-1])
    assert TF_LOG_LINE.search(proc.stderr), proc.stderr[-2000:]  # TensorFlow's own lines
    dependencies = [m for m in loaded if m not in ("lcr_larq", "models") and m.isidentifier()
                    and not m.startswith("_")]
    alone = python(CHANGED_ENVIRONMENT.format(modules=dependencies), **{compat.LEGACY_KERAS: "1"})
    assert alone.returncode == 0, alone.stderr[-2000:]
    by_dependencies = json.loads(alone.stdout.splitlines()[-1])[0]
    ours = {k: v for k, v in changed.items() if by_dependencies.get(k, "unset") != v}
    assert ours == ({compat.LEGACY_KERAS: "1"} if NEEDS_SWITCH else {}), ours


@pytest.mark.parametrize("argv, orig_argv, command", [
    (["/venv/bin/lcr-train", "--help"], None, True),
    (["/venv/bin/lcr-evaluate"], None, True),
    (["/venv/bin/lcr-nothing"], None, False),  # not a module of lcr_larq/cli
    (["-m"], ["python", "-X", "dev", "-m", "lcr_larq.cli.study", "--help"], True),
    (["-m"], ["python", "-mlcr_larq.cli.export"], True),
    (["-m"], ["python", "-m", "lcr_larq.cli._private"], False),
    (["-m"], ["python", "-m", "pytest", "-q"], False),
    ([os.path.join(ROOT, "train.py")], None, True),
    (["train.py"], None, False),  # a train.py of the current directory, not the checkout's
    (["my_script.py"], None, False),
    (["-c"], ["python", "-c", "import lcr_larq"], False),
    ([], [], False),
])
def test_the_commands_are_told_apart_by_how_the_process_started(argv, orig_argv, command,
                                                                 tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("")
    assert compat.started_as_command(argv, orig_argv or []) is command


@pytest.mark.skipif(not NEEDS_SWITCH, reason="TensorFlow < 2.16 has Keras 2 as tf.keras")
def test_tensorflow_imported_first_is_a_one_line_import_error():
    proc = python("import tensorflow\nimport lcr_larq")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tensorflow ") and "import lcr_larq first" in last
    assert "TF_USE_LEGACY_KERAS=1" in last
    # With the switch set beforehand, the same order works.
    proc = python("import tensorflow\nimport lcr_larq", TF_USE_LEGACY_KERAS="1")
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(not NEEDS_SWITCH, reason="TensorFlow < 2.16 has Keras 2 as tf.keras")
def test_switch_set_off_is_a_one_line_import_error_naming_it():
    proc = python("import lcr_larq", TF_USE_LEGACY_KERAS="0")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: lcr-larq needs Keras 2, but tf.keras is Keras 3")
    assert "TF_USE_LEGACY_KERAS=1 (not '0')" in last


def test_keras_tuner_builds_on_tf_keras_and_keras_is_given_back(tmp_path):
    proc = python(
        "import os, sys, lcr_larq, tensorflow as tf\n"
        "before = sys.modules.get('keras')\n"
        "kt = lcr_larq.compat.import_keras_tuner()\n"
        "assert sys.modules.get('keras') is before, 'keras not restored'\n"
        "def build(hp):\n"
        "    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(\n"
        "        hp.Int('units', 1, 2))])\n"
        "    model.compile('sgd', 'mse')\n"
        "    return model\n"
        "tuner = kt.RandomSearch(build, 'loss', max_trials=1, directory=os.environ['KT_DIR'],\n"
        "                        overwrite=True)\n"
        "tuner.search(tf.zeros((4, 3)), tf.zeros((4, 1)), epochs=1, verbose=0)\n"
        "print(len(tuner.oracle.get_best_trials(1)))",
        KT_DIR=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "1"  # the trial ran on a tf-keras model
