"""train.py end to end on digits: results and one-line errors (resume: test_runs.py)."""

import csv
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def epochs_in(path):
    with open(path) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.stack
def test_train_py_end_to_end_begins_with_its_first_epoch(tmp_path):
    """The main job as the README runs it, but two epochs of one step: its
    output begins with the first epoch (no CUDA line, no warning before it),
    and the run directory holds what it promises."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), "--epochs", "2",
         "--steps-per-epoch", "1",  # the defaults but short epochs
         "--output-dir", str(out), "--lcr-lambda", "4"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip() == "", proc.stderr[:400]  # no CUDA line, no warning
    assert proc.stdout.startswith("Epoch 1/2")
    assert "test accuracy" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    for key in ("test_accuracy", "test_loss", "lcr_lambda", "lcr_beta", "epochs", "seconds"):
        assert key in results
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["epochs"] == 2
    assert results["lcr_lambda"] == 4.0 and results["blocks"] == 9
    assert results["test_size"] == 360
    # 10 % of the 1,437 training images held out, rounded per class (stratified).
    assert 140 <= results["validation_size"] <= 150
    assert results["train_size"] + results["validation_size"] == 1437
    assert 0.0 <= results["test_accuracy_moving_statistics"] <= 1.0
    assert results["bn_recalibration"] == {
        "layers": 19, "batches": 11, "samples": results["train_size"]
    }
    assert epochs_in(out / "history.csv") == [0, 1]
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"loss", "accuracy", "lcr_lip", "sigma_ratio_9", "val_accuracy", "val_loss"} <= set(
        rows[0]
    )
    empty = [k for k in rows[0] if all(row[k] in ("", "NA") for row in rows)]
    assert not empty, f"columns empty in every row: {empty}"
    import lcr_larq  # noqa: F401  (registers the custom objects)

    model = tf.keras.models.load_model(out / "model.keras")
    assert lcr_larq.lcr_layer(model) is not None
    bnn = tf.keras.models.load_model(out / "bnn.keras")
    assert lcr_larq.lcr_layer(bnn) is None
    assert not (out / "backup").exists()  # cleaned up after a finished run


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lcr-beta", "1"], "--lcr-beta must be > 1"),
        (["--lcr-lambda", "-1"], "--lcr-lambda must be >= 0"),
        (["--model", "vgg"], "unknown model 'vgg'"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--lcr-reference", "teacher"], "--teacher"),
        (["--output-dir", os.path.join(__file__, "sub")], "choose a writable directory"),
    ],
)
def test_bad_arguments_end_in_one_line(args, needle, capsys):
    code = train.main(args + ["--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err


def test_bad_argument_from_the_shell_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), "--lcr-beta", "0.5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    # the one line, nothing of TensorFlow's start-up before it (the commands start quietly)
    assert proc.stderr.startswith("error: --lcr-beta") and proc.stderr.count("\n") == 1
