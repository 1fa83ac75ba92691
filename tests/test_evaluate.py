"""lcr-evaluate: clean accuracy, corruption accuracy, CE and mCE."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import RUN_SETTINGS

from lcr_larq import evaluation
from lcr_larq.cli import evaluate as command
from lcr_larq.data import DATASETS
from lcr_larq.errors import ConfigError
from lcr_larq.evaluation import clean, corruptions
from lcr_larq.evaluation.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from lcr_larq.training import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settings(**values):
    from lcr_larq import settings as cfg

    return cfg.validate(evaluation.EvaluateSettings(**values))


def test_option_parsing():
    assert corruptions.corruption_names(["all"]) == list(CORRUPTIONS)
    assert corruptions.corruption_names(["fog", "fog", "snow"]) == ["fog", "snow"]
    assert corruptions.corruption_names(["fog"], extra=True) == ["fog", *EXTRA_CORRUPTIONS]
    assert settings(model_dir="x", severities=(5, 1)).severities == (5, 1)
    with pytest.raises(ConfigError, match="unknown corruption 'rain'"):
        settings(model_dir="x", corruptions=("fog", "rain"))
    for bad in ((0, 3), (6,)):
        with pytest.raises(ConfigError, match="--severities must be one of"):
            settings(model_dir="x", severities=bad)
    with pytest.raises(ConfigError, match="--model-dir is required"):
        settings()


def test_corruption_metrics_by_hand():
    acc = {
        "fog": {"1": 0.9, "5": 0.5},  # errors 0.1 + 0.5 = 0.6
        "snow": {"1": 0.8, "5": 0.2},  # errors 0.2 + 0.8 = 1.0
        "spatter": {"1": 1.0, "5": 0.0},  # extra: 0 + 1 = 1.0, not in the mCE
    }
    m = corruptions.corruption_summary(acc, normalized=False)
    assert m["corruption_error"] == pytest.approx({"fog": 0.6, "snow": 1.0, "spatter": 1.0})
    assert m["mce"] == pytest.approx(0.8) and m["mce_corruptions"] == ["fog", "snow"]
    assert m["mce_extra"] == pytest.approx(1.0)
    # ImageNet: divided by AlexNet's errors at the same severities (fog: 0.67474, 0.94500)
    n = corruptions.corruption_summary({"fog": {"1": 0.9, "5": 0.5}}, normalized=True)
    assert n["mce"] == pytest.approx(0.6 / (0.67474 + 0.94500))
    # The same per-severity AlexNet errors through mean_corruption_error.
    direct = corruptions.mean_corruption_error({"fog": [0.1, 0.5]}, "alexnet", severities=[1, 5])
    assert direct.value == pytest.approx(n["mce"])


def test_tfds_config_names():
    """The published corrupted sets are their dataset source's."""
    assert DATASETS["cifar10"].corrupted_config("elastic_transform", 2) == (
        "cifar10_corrupted", "elastic_2")
    assert DATASETS["imagenet2012"].corrupted_config("glass_blur", 5) == (
        "imagenet2012_corrupted", "glass_blur_5")
    assert not DATASETS["digits"].corrupted_prepared(["fog"], [1], None)
    assert not DATASETS["cifar100"].corrupted_prepared(["fog"], [1], None)


def test_streamed_test_split_maps_back_to_the_exact_pixels():
    """Splits not held in memory (ImageNet) are read from the normalized pipeline."""
    import dataclasses

    from lcr_larq.data import load_dataset

    data = load_dataset("digits", batch_size=50)
    streamed = dataclasses.replace(data, test_arrays=None)
    x, y = runs.test_images(streamed, max_images=120)
    assert x.dtype == np.uint8 and len(x) == 120
    assert np.array_equal(x, data.test_arrays[0][:120])
    assert np.array_equal(y, data.test_arrays[1][:120])


def test_streamed_accuracy_counts_and_stops():
    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(3,))])  # logits = x
    x = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2, 0]]
    y = np.array([0, 1, 0, 0, 1, 2, 2])  # correct: 0, 1, 3, 4, 5 -> 5 of 7
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    assert clean.streamed_accuracy(model, batches) == (pytest.approx(5 / 7), 7)
    assert clean.streamed_accuracy(model, batches, max_images=4) == (pytest.approx(3 / 4), 4)


@pytest.mark.stack
def test_evaluate_writes_consistent_report(trained_run, capsys):
    code = command.main([
        "--model-dir", str(trained_run), "--corruptions", "gaussian_noise", "contrast", "pixelate",
        "--severities", "1", "5", "--extra", "--seed", "3", "--quiet",
    ])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads((trained_run / "robustness.json").read_text())
    for key in ("clean_accuracy", "mce", "normalized", "accuracy", "corruption_error"):
        assert key in report
    assert report["normalized"] is False and "unnormalized" in out
    assert report["num_images"] == 360 and report["severities"] == [1, 5]

    # clean accuracy == Keras' own evaluation of the saved BNN on the test split
    from lcr_larq import data as lcr_data
    bnn = runs.load_model(str(trained_run))
    bnn.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    test = lcr_data.load_dataset("digits", batch_size=32,
                                 input_size=RUN_SETTINGS["input_size"]).test
    _, keras_accuracy = bnn.evaluate(test, verbose=0)
    assert report["clean_accuracy"] == pytest.approx(keras_accuracy, abs=1e-6)
    results = json.loads((trained_run / "results.json").read_text())
    assert report["clean_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)

    # mCE == mean over the benchmark corruptions of the errors summed over severities,
    # recomputed from the printed table (accuracies in %, 1 decimal)
    rows = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if parts and parts[0] in report["accuracy"]:
            rows[parts[0]] = [float(v) for v in parts[1:3]]
    assert set(rows) == {"gaussian_noise", "contrast", "pixelate", *EXTRA_CORRUPTIONS}
    benchmark = ["gaussian_noise", "contrast", "pixelate"]
    assert report["mce_corruptions"] == benchmark
    from_table = np.mean([sum(1 - a / 100 for a in rows[c]) for c in benchmark])
    assert report["mce"] == pytest.approx(from_table, abs=1.5e-3)
    from_json = np.mean([sum(1 - a for a in report["accuracy"][c].values()) for c in benchmark])
    assert report["mce"] == pytest.approx(from_json, abs=1e-12)
    assert report["mce_extra"] == pytest.approx(np.mean([
        sum(1 - a for a in report["accuracy"][c].values()) for c in EXTRA_CORRUPTIONS
    ]))
    # the corruption must actually change the images: severity 5 contrast on a
    # network that is not constant would otherwise equal clean accuracy exactly
    cells = [a for by in report["accuracy"].values() for a in by.values()]
    assert len(set(cells)) > 1
    assert (trained_run / "corruption_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generated_corruptions_are_deterministic_and_cached(trained_run, tmp_path):
    kw = dict(model_dir=str(trained_run), corruptions=("impulse_noise",), severities=(3,),
              max_images=40, seed=1)
    a = evaluation.evaluate(settings(cache_dir=str(tmp_path), **kw))
    cached = list(tmp_path.glob("*.npy"))
    assert len(cached) == 1
    # a cached set is read back: overwrite it with the clean images -> clean accuracy
    x, _ = runs.test_images(runs.load_run(str(trained_run)).dataset, 40)
    np.save(cached[0], x)
    b = evaluation.evaluate(settings(cache_dir=str(tmp_path), **kw))
    assert b["accuracy"]["impulse_noise"]["3"] == pytest.approx(b["clean_accuracy"])
    c = evaluation.evaluate(settings(**kw))
    assert c["accuracy"] == a["accuracy"] and c["num_images"] == 40
    xa = corruptions.corrupted(x, "impulse_noise", 3, seed=1)
    xb = corruptions.corrupted(x, "impulse_noise", 3, seed=2)
    assert np.array_equal(xa, corruptions.corrupted(x, "impulse_noise", 3, seed=1))
    assert not np.array_equal(xa, xb) and not np.array_equal(xa, x)


def test_linear_probe_trains_only_the_head(trained_run):
    run = runs.load_run(str(trained_run))
    before = {layer.name: [w.numpy().copy() for w in layer.weights] for layer in run.model.layers}
    probe = clean.linear_probe(run.model, run.dataset, epochs=1)
    assert probe["head"] == "logits" and probe["epochs"] == 1
    changed = {
        layer.name for layer in run.model.layers
        if any(not np.array_equal(a, w.numpy()) for a, w in zip(before[layer.name], layer.weights))
    }
    assert changed == {"logits"}, changed  # batch-norm statistics included
    report = evaluation.evaluate(settings(
        model_dir=str(trained_run), corruptions=("contrast",), severities=(5,),
        protocol="linear-probe", probe_epochs=1, max_images=60,
    ))
    assert report["protocol"] == "linear-probe" and report["linear_probe"]["head"] == "logits"


def test_a_run_from_before_bn_recalibration_is_recalibrated_on_loading(trained_run, tmp_path):
    """A results.json without ``bn_recalibration`` and a recipe without
    ``bn_recalibration_batches`` (a run older than both): every command scores the
    network with the BN statistics of its final weights."""
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    runs.save_json({"test_accuracy": 0.5}, str(old / "results.json"))
    recipe = (old / "config.yaml").read_text().splitlines()
    (old / "config.yaml").write_text("\n".join(
        line for line in recipe if not line.startswith("bn_recalibration_batches:")))
    run = runs.load_run(str(old))
    assert run.bn_recalibration is not None and run.bn_recalibration["batches"] >= 1
    stem = run.model.get_layer("stem_bn")
    kept = runs.load_run(str(trained_run)).model.get_layer("stem_bn")
    assert not np.allclose(stem.moving_mean.numpy(), kept.moving_mean.numpy())


@pytest.mark.parametrize("size", [32, 16])
def test_tfds_source_reads_the_published_sets(tmp_path, tfds_mocked, size):
    """--source tfds reads cifar10_corrupted (mocked offline) and keeps its labels; a
    model of another input size (--input-size) gets the published 32×32 images resized."""
    import tensorflow_datasets as tfds

    from lcr_larq import layers as L
    from lcr_larq import settings as cfg
    from lcr_larq.training import TrainConfig

    inputs = tf.keras.Input((size, size, 3))
    x = L.QuantConv2D(4, 3, padding="same", input_quantizer="ste_sign",
                      kernel_quantizer="ste_sign", use_bias=False)(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x))
    model.save(tmp_path / "bnn.keras")
    recipe = TrainConfig(dataset="cifar10", input_size=None if size == 32 else size)
    cfg.save_recipe(recipe, str(tmp_path / "config.yaml"))

    seen = []

    def as_dataset(self, split, **_):
        seen.append((self.name, self.builder_config.name if self.builder_config else None))
        n = 7 if self.name == "cifar10_corrupted" else 5
        images = np.full((n, 32, 32, 3), 200, np.uint8)
        labels = np.arange(n, dtype=np.int64) % 10
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    runs.save_json({"bn_recalibration": None}, str(tmp_path / "results.json"))
    with tfds.testing.mock_data(num_examples=5, as_dataset_fn=as_dataset):
        report = evaluation.evaluate(settings(
            model_dir=str(tmp_path), corruptions=("glass_blur",), severities=(2,), source="tfds"
        ))
        batches = list(DATASETS["cifar10"].corrupted_batches(
            "glass_blur", 2, None, (size, size), batch_size=4))
    assert ("cifar10_corrupted", "frosted_glass_blur_2") in seen
    assert report["source"].startswith("tfds:cifar10_corrupted")
    assert report["num_images"] == 5 and report["corrupted_images"] == {"glass_blur_2": 7}
    # every image is identical, so the prediction is one class: accuracy = share of it
    assert report["accuracy"]["glass_blur"]["2"] in {0.0, 1 / 7}
    # the published images at the model's size, pixels kept (a constant image stays so)
    assert [x.shape for x, _ in batches] == [(4, size, size, 3), (3, size, size, 3)]
    assert all(x.dtype == np.uint8 and (x == 200).all() for x, _ in batches)
    assert np.concatenate([y for _, y in batches]).tolist() == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "holds no bnn.keras or model.keras"),
    (lambda p: (p / "bnn.keras").write_bytes(b"not a zip") and p, "not a loadable Keras model"),
])
def test_bad_model_dir_is_one_line(tmp_path, capsys, make, needle):
    code = command.main(["--model-dir", str(make(tmp_path)), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err


def test_bad_options_are_one_line(trained_run, capsys):
    for args, needle in (
        (["--corruptions", "rain"], "unknown corruption 'rain'"),
        (["--severities", "7"], "--severities must be one of [1, 2, 3, 4, 5]"),
        (["--source", "tfds"], "TFDS has no corrupted version of digits"),
        (["--max-images", "0"], "--max-images must be >= 1"),
        (["--probe-lr", "nan"], "--probe-lr must be a finite number"),
        (["--cache-dir", "/proc/x"], "--cache-dir /proc/x"),
    ):
        code = command.main(["--model-dir", str(trained_run), "--quiet", *args])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and needle in err, (args, err)


def test_shell_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lcr_larq.cli.evaluate", "--model-dir", str(tmp_path / "gone")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # the one line, nothing of TensorFlow's start-up before it (python -m starts quietly)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
