"""The Keras 2 switch of lcr_larq.compat, in fresh interpreters (it acts at import)."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from lcr_larq import compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDS_SWITCH = compat.version_tuple(tf.__version__) >= (2, 16)


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != compat.LEGACY_KERAS}
    environment.update(PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=300)


def test_import_makes_tf_keras_keras_2_for_larq_and_the_children_quietly():
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
    # TensorFlow's native start-up lines do not reach the user's terminal.
    assert proc.stderr == ""


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
