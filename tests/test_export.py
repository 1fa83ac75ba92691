"""Export to Larq Compute Engine: agreement, no trace of LCR, one-line errors."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import RUN_BLOCKS, RUN_SETTINGS, one_line_error

from lcr_larq import export as lcr_export
from lcr_larq.cli import export as command
from lcr_larq.graph import lcr_layer, strip_lcr
from lcr_larq.quantizers import quantized_convolutions
from lcr_larq.training import runs
from models import build_model

load_trained_model = runs.load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: The run exported below (conftest.trained_run): ResNet-8, ResNet-20's layout with
#: one block per stage (zero-pad shortcuts, float stem and classifier).
MODEL, BLOCKS = RUN_SETTINGS["model"], RUN_BLOCKS


@pytest.fixture(scope="module")
def run_dir(trained_run):
    return str(trained_run)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """``lcr-export --model-dir RUN --output-dir OUT``, in process."""
    out = str(tmp_path_factory.mktemp("export"))
    code = command.main(["--model-dir", run_dir, "--output-dir", out])
    assert code == 0
    with open(os.path.join(out, lcr_export.REPORT_FILE)) as handle:
        return out, json.load(handle)


@pytest.mark.stack
def test_trained_model_exports_agreeing_and_free_of_lcr(run_dir, exported):
    out, report = exported
    assert report["test_samples"] == 360  # the whole digits test split
    # The two runtimes round differently and a binary network can flip a sign
    # on that: the logits of a few samples move (at most 3 %), which decides
    # the argmax only where it was a near tie (frequent after 4 steps).
    assert report["argmax_agreement"] >= 0.95
    assert report["samples_beyond_tolerance"] <= 0.03 * report["test_samples"]
    assert report["lcr_trace"] == []
    # Every binary convolution (two per block) runs as an LCE binary kernel; the
    # only float convolution left is the stem (IR-Net's CIFAR ResNets downsample
    # with parameter-free zero-padding shortcuts).
    assert report["binary_conv_layers"] == report["lce_bconv_ops"] == 2 * BLOCKS
    assert report["binary_ops"]["CONV_2D"] == 1
    assert report["float_ops"]["CONV_2D"] == 2 * BLOCKS + 1
    assert report["binary_bytes"] * 10 <= report["float_bytes"]
    binary = open(os.path.join(out, lcr_export.BINARY_FILE), "rb").read()
    floating = open(os.path.join(out, lcr_export.FLOAT_FILE), "rb").read()
    assert (len(binary), len(floating)) == (report["binary_bytes"], report["float_bytes"])
    ops = lcr_export.flatbuffer_ops(binary)
    assert not any("lipschitz" in op.lower() or "lcr" in op.lower() for op in ops)
    assert abs(report["lce_accuracy"] - report["keras_accuracy"]) <= 0.01
    # The written file computes the trained BNN's logits (up to float rounding;
    # the median allows a rare sign flip of an activation at zero).
    dataset = runs.load_run(run_dir).dataset
    images = np.asarray(dataset.normalize(runs.test_images(dataset, 24)[0]))
    keras_logits = load_trained_model(run_dir).predict(images, verbose=0)
    lce_logits = lcr_export.interpreter_logits(binary, images)
    assert np.median(np.abs(lce_logits - keras_logits)) < 1e-4
    assert np.std(keras_logits) > 1e-2  # logits that vary: the check can fail
    control = report["keras_rounding_control"]
    assert control["input_noise"] == lcr_export.CONTROL_NOISE
    assert 0.0 <= control["argmax_agreement"] <= 1.0


def test_rounding_control_measures_the_bnn_against_itself():
    bnn = build_model("resnet20", (32, 32, 1), 10)
    x = np.random.default_rng(1).normal(size=(32, 32, 32, 1)).astype(np.float32)
    reference = bnn.predict(x, verbose=0)
    exact = lcr_export.rounding_control(bnn, x, reference, noise=0.0)
    assert exact["argmax_agreement"] == 1.0 and exact["max_logit_difference"] == 0.0
    shaken = lcr_export.rounding_control(bnn, x, reference, noise=0.5)
    assert shaken["samples_beyond_tolerance"] > 16  # binary: far from continuous


@pytest.fixture(scope="module")
def training_model(run_dir):
    """The run's model.keras: the BNN with its LCR layer and reference path."""
    model = tf.keras.models.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    assert lcr_layer(model) is not None
    return model


@pytest.fixture(scope="module")
def with_lcr(training_model):
    """The LCE flatbuffer of the training model, stripped of LCR."""
    return lcr_export.convert_binary(strip_lcr(training_model))


def test_model_with_and_without_lcr_export_to_the_same_graph(
    training_model, with_lcr, exported
):
    weights = strip_lcr(training_model).get_weights()
    shape = training_model.input_shape[1:]  # the run's digits size

    plain = build_model(MODEL, shape, 10)  # never had LCR
    assert lcr_layer(plain) is None
    plain.set_weights(weights)
    a = lcr_export.summarize(with_lcr)
    b = lcr_export.summarize(lcr_export.convert_binary(plain))
    assert a.ops == b.ops
    assert [shape for _, shape in a.tensors] == [shape for _, shape in b.tensors]
    assert a.graph() == b.graph()  # same ops, wiring, shapes and weights

    # Built in a fresh session, even the tensor names match: same bytes.
    tf.keras.backend.clear_session()
    fresh = build_model(MODEL, shape, 10)
    fresh.set_weights(weights)
    assert lcr_export.convert_binary(fresh) == with_lcr
    # …and both are the file the exporter wrote from the run's bnn.keras.
    out, _ = exported
    written = open(os.path.join(out, lcr_export.BINARY_FILE), "rb").read()
    assert lcr_export.summarize(written).graph() == a.graph()


def test_other_weights_give_another_graph(training_model, with_lcr):
    """graph() compares the weights: a changed kernel is noticed."""
    reference = lcr_export.summarize(with_lcr).graph()
    other = build_model(MODEL, training_model.input_shape[1:], 10)
    other.set_weights(strip_lcr(training_model).get_weights())
    kernel = other.get_layer("block2_conv2").kernel
    kernel.assign(-kernel.latent_variable)
    assert lcr_export.summarize(lcr_export.convert_binary(other)).graph() != reference


def test_reference_path_left_in_the_graph_is_detected(training_model):
    """The check is not vacuous: logits that also depend on the full-precision
    reference path are reported — the path replays the convolutions up to the
    last block (for ResNet-8: such ops beyond the plain BNN's 8 layers)."""
    inputs = lcr_layer(training_model).input  # [logits, binary…, reference…]
    logits, reference_out = inputs[0], inputs[-1]
    leaky_logits = logits + tf.reduce_mean(reference_out, axis=[1, 2, 3])[:, None]
    leaky = tf.keras.Model(training_model.inputs, leaky_logits)
    found = lcr_export.lcr_trace(
        lcr_export.convert_binary(leaky), strip_lcr(training_model)
    )
    counts = [re.search(r"(\d+) convolution/dense ops for the (\d+)", f) for f in found]
    exported_ops, plain_layers = next(map(int, m.groups()) for m in counts if m)
    assert plain_layers == 2 * BLOCKS + 2 and exported_ops > plain_layers


def test_float_counterpart_carries_the_latent_weights(run_dir):
    run = runs.load_run(run_dir)
    bnn, fp = run.model, run.float_counterpart()
    assert fp.name == f"{MODEL}_fp_1w1a"  # the registered architecture, rebuilt
    assert not quantized_convolutions(fp, binary=True)
    latent = bnn.get_layer("block3_conv1").kernel.latent_variable.numpy()
    np.testing.assert_array_equal(fp.get_layer("block3_conv1").kernel.numpy(), latent)
    x = np.random.default_rng(0).normal(size=(2, *bnn.input_shape[1:])).astype(np.float32)
    # Same weights, quantizers off: a different function from the BNN's.
    assert not np.allclose(fp(x, training=False), bnn(x, training=False))


def test_missing_model_dir_is_a_one_line_error(tmp_path, capsys):
    code = command.main(["--model-dir", str(tmp_path / "nowhere")])
    assert "does not exist" in one_line_error(capsys, code)


def test_corrupt_model_is_a_one_line_error(tmp_path, capsys):
    for name in ("bnn.keras", "model.keras"):
        (tmp_path / name).write_bytes(b"not a zip archive")
    code = command.main(["--model-dir", str(tmp_path)])
    assert "not a loadable Keras model" in one_line_error(capsys, code)
    assert not (tmp_path / lcr_export.REPORT_FILE).exists()


def test_run_dir_without_recipe_is_a_one_line_error(run_dir, tmp_path, capsys):
    shutil.copy(os.path.join(run_dir, "bnn.keras"), tmp_path / "bnn.keras")
    code = command.main(["--model-dir", str(tmp_path)])
    assert "holds no config.yaml naming the dataset" in one_line_error(capsys, code)


def test_command_line_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lcr_larq.cli.export", "--model-dir", str(tmp_path / "gone")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    # the one line, nothing of TensorFlow's start-up before it (python -m starts quietly)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "does not exist" in proc.stderr
    assert proc.stdout == ""
