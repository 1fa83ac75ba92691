"""tf.distribute: a mirrored run on 2 replicas equals a single-device run.

TensorFlow fixes its devices when it first initializes them, and other test
modules do that first, so the comparison runs in a child process that splits
the CPU into 2 logical devices before anything else. One child runs every
case and prints a JSON report; the tests below read it.

What is compared, same initial weights, same global batch of 16, SGD, no
shuffling, LCR attached with :func:`lcr_larq.attach_lcr` (λ = 4, ratio form):

* ``plain``: a binary residual network without batch normalization, on
  batches whose two halves differ. Everything it computes is per sample, so
  loss, ``L_lip`` and every weight must agree to float precision; this checks
  that Keras averages the LCR loss over replicas like the cross entropy.
* ``plain_double``: the single-device run with 2λ — what an LCR loss that
  missed Keras' 1/replicas scaling would give. It must *not* agree: the check
  can fail.
* ``bn``: the same network with this project's batch normalization after every
  binary convolution (binary and full-precision paths). Each replica
  normalizes with its own half-batch statistics, so the two halves of every
  batch are made identical: the per-replica statistics then equal the global
  ones, and loss, ``L_lip``, weights and moving means must agree. The moving
  variances differ in a known way only: Keras' fused batch norm feeds them
  the unbiased variance, n/(n−1) of the batch variance, with n the
  per-replica count of values.
* ``plain_mse``: the public code's ``mse`` form, evaluated once on each side.
* ``every``: ``plain`` with LCR on every second step (``every=2``): each
  replica keeps its own step count, and the two must agree with the single
  device run, which must differ from LCR on every step.
* ``run``: :func:`lcr_larq.training.run` with ``--strategy mirrored`` end to
  end (train, evaluate the stripped BNN, save) on the 2 replicas, under
  ``--mixed-precision bfloat16`` and ``float16`` (LCR on, whose gradients
  overflow float16 at the first loss scale, so the dynamic loss scale moves),
  each in a child of its own: two mirrored strategies in one process share
  collective keys.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import json, os, sys
import lcr_larq  # before TensorFlow: tf.keras must be Keras 2
import numpy as np
import tensorflow as tf
from lcr_larq import layers as L

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

BATCH, STEPS, SHAPE, CLASSES, LAMBDA, MOMENTUM = 16, 3, (8, 8, 3), 10, 4.0, 0.9
CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def network(batch_norm):
    """Stem, 3 binary residual blocks (named for LCR), classifier."""
    x = inputs = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem_conv")(x)
    x = L.HardTanh(name="stem_out")(x)
    for k in (1, 2, 3):
        h = L.QuantConv2D(
            8, 3, padding="same", use_bias=False, input_quantizer="ste_sign",
            kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
            pad_values=1.0, strides=2 if k == 2 else 1, name=f"block{k}_conv",
        )(x)
        if batch_norm:
            h = L.BatchNormalization(momentum=MOMENTUM, epsilon=1e-5, name=f"block{k}_bn")(h)
        if k == 2:
            x = tf.keras.layers.AveragePooling2D(2, name="block2_pool")(x)
        x = tf.keras.layers.Add(name=f"block{k}_add")([h, x])
        x = L.HardTanh(name=f"block{k}_out")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(CLASSES, name="logits")(x))


def build(batch_norm, lcr_lambda, form="ratio", every=1):
    tf.keras.utils.set_random_seed(0)
    return lcr_larq.attach_lcr(network(batch_norm), lcr_lambda=lcr_lambda, lcr_beta=2.0,
                               lcr_form=form, lcr_every=every)


def data(twin_halves):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(STEPS, 2, BATCH // 2, *SHAPE)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=(STEPS, 2, BATCH // 2)).astype(np.int32)
    if twin_halves:
        x[:, 1], y[:, 1] = x[:, 0], y[:, 0]
    x, y = x.reshape(-1, *SHAPE), y.reshape(-1)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


class Record(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})


def compiled(strategy, batch_norm, lcr_lambda, form, init, every=1):
    with strategy.scope():
        model = build(batch_norm, lcr_lambda, form, every)
        model.set_weights(init)
        model.compile(tf.keras.optimizers.SGD(0.05, momentum=0.9), CE, metrics=["accuracy"])
    return model


def train(strategy, batch_norm, lcr_lambda, init, every=1):
    model = compiled(strategy, batch_norm, lcr_lambda, "ratio", init, every)
    record = Record()
    model.fit(data(batch_norm), epochs=1, shuffle=False, verbose=0, callbacks=[record])
    names = [w.name for w in model.weights]
    return {
        "replicas": strategy.num_replicas_in_sync,
        "loss": [step["loss"] for step in record.logs],
        "lcr_lip": [step["lcr_lip"] for step in record.logs],
        "weights": {n: w.tolist() for n, w in zip(names, model.get_weights())},
    }


def spatial_counts(batch_norm):
    """Values per channel that each batch norm sees in one batch of one sample."""
    model = network(batch_norm)
    return {
        layer.name: int(np.prod(layer.input_shape[1:3]))
        for layer in model.layers if isinstance(layer, L.BatchNormalization)
    }


if sys.argv[1] == "run":
    from lcr_larq import training
    from lcr_larq.training import TrainConfig

    from lcr_larq.training import runs

    class Replicas(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.count = self.model.distribute_strategy.num_replicas_in_sync
            self.optimizer = type(self.model.optimizer).__name__
            blocks = lcr_larq.find_blocks(lcr_larq.strip_lcr(self.model))
            self.dtypes = sorted({b.output.dtype.name for b in blocks})
            self.scales = []

        def on_epoch_end(self, epoch, logs=None):
            scale = getattr(self.model.optimizer, "loss_scale", None)
            if scale is not None:
                self.scales.append(float(scale))

    replicas = Replicas()
    precision = sys.argv[3]
    config = TrainConfig(strategy="mirrored", model="resnet8", epochs=2,
                         steps_per_epoch=2 if precision == "float16" else 1,
                         batch_size=16, input_size=8, verbose=0, mixed_precision=precision,
                         lcr_lambda=4.0 if precision == "float16" else 0.0, lcr_samples=8,
                         output_dir=sys.argv[2])
    results = training.run(config, extra_callbacks=[replicas])
    bnn = runs.load_model(sys.argv[2])
    print("REPORT " + json.dumps({
        "replicas": replicas.count, "test_accuracy": results["test_accuracy"],
        "files": sorted(os.listdir(sys.argv[2])), "optimizer": replicas.optimizer,
        "dtypes": replicas.dtypes, "scales": replicas.scales,
        "mixed_precision": results["mixed_precision"],
        "finite": bool(all(np.isfinite(w).all() for w in bnn.get_weights())),
        "policy_after": tf.keras.mixed_precision.global_policy().name,
    }))
    sys.exit(0)

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
single = tf.distribute.get_strategy()
report = {"devices": len(tf.config.list_logical_devices("CPU"))}
for case, batch_norm in (("plain", False), ("bn", True)):
    reference = build(batch_norm, LAMBDA)
    init = reference.get_weights()
    report[case] = {
        "initial": {w.name: v.tolist() for w, v in zip(reference.weights, init)},
        "single": train(single, batch_norm, LAMBDA, init),
        "mirrored": train(mirrored, batch_norm, LAMBDA, init),
    }
    if not batch_norm:
        report[case]["double"] = train(single, batch_norm, 2 * LAMBDA, init)
        init_every = build(batch_norm, LAMBDA, every=2).get_weights()  # + the step count
        report["every"] = {
            name: train(strategy, batch_norm, LAMBDA, init_every, every=2)
            for name, strategy in (("single", single), ("mirrored", mirrored))
        }
report["bn"]["counts"] = spatial_counts(True)
init = build(False, LAMBDA, "mse").get_weights()
report["plain_mse"] = {
    name: compiled(strategy, False, LAMBDA, "mse", init).evaluate(
        data(False).take(1), verbose=0, return_dict=True)["lcr_lip"]
    for name, strategy in (("single", single), ("mirrored", mirrored))
}


def smallest_replica_batch(ds):
    """The fewest samples a replica gets in any batch of ``ds`` on 2 replicas."""
    batches = mirrored.experimental_distribute_dataset(ds)
    return min(int(tf.shape(t)[0]) for b in batches for t in mirrored.experimental_local_results(b))


from lcr_larq import data as D
report["split"] = {}
for size, batch in ((145, 16), (129, 128), (17, 16), (257, 256), (360, 16)):
    for mapped in (False, True):  # tf.data rebatches these two shapes by two routes
        ds = tf.data.Dataset.range(size).batch(batch)
        if mapped:
            ds = ds.map(lambda t: t + 1)
        toy = D.Dataset("toy", test=ds, input_shape=(1,), num_classes=1, train_size=0,
                        test_size=size, batch_size=batch)
        report["split"][f"{size}/{batch}/{mapped}"] = [
            smallest_replica_batch(ds), smallest_replica_batch(toy.for_replicas(2).test)
        ]
print("REPORT " + json.dumps(report))
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("distribute")
    script = work / "mirrored_vs_single.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    reports = {}
    modes = [("compare", "compare", [])] + [
        (f"run_{p}", "run", [str(work / f"run_{p}"), p]) for p in ("bfloat16", "float16")
    ]
    for name, mode, args in modes:
        proc = subprocess.run(
            [sys.executable, str(script), mode, *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = [x for x in proc.stdout.splitlines() if x.startswith("REPORT ")][-1]
        reports[name] = json.loads(line[len("REPORT "):])
    return {**reports.pop("compare"), **reports}


def weights(run, skip=()):
    return {k: np.asarray(v) for k, v in run["weights"].items() if not any(s in k for s in skip)}


def test_two_logical_devices_give_two_replicas(report):
    assert report["devices"] == 2
    for case in ("plain", "bn"):
        assert report[case]["mirrored"]["replicas"] == 2
        assert report[case]["single"]["replicas"] == 1


def test_mirrored_matches_single_device_without_batch_norm(report):
    single, mirrored = report["plain"]["single"], report["plain"]["mirrored"]
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["lcr_lip"], single["lcr_lip"], rtol=1e-4)
    assert min(single["lcr_lip"]) > 1e-3  # the regularizer is really active
    initial = {k: np.asarray(v) for k, v in report["plain"]["initial"].items()}
    w_single, w_mirrored = weights(single), weights(mirrored)
    assert w_single.keys() == w_mirrored.keys() == initial.keys()
    moved = max(np.max(np.abs(w_single[k] - initial[k])) for k in initial)
    assert moved > 1e-2  # training changed the weights
    for name in w_single:
        np.testing.assert_allclose(w_mirrored[name], w_single[name], atol=1e-5, err_msg=name)


def test_lcr_loss_scaling_is_observable(report):
    """A regularizer counted twice (no 1/replicas scaling) moves the weights
    measurably, so the equality above is a real check of the reduction."""
    w_mirrored = weights(report["plain"]["mirrored"])
    w_double = weights(report["plain"]["double"])
    gap = max(np.max(np.abs(w_mirrored[k] - w_double[k])) for k in w_mirrored)
    assert gap > 1e-3, gap


def test_mirrored_matches_single_device_with_batch_norm(report):
    single, mirrored = report["bn"]["single"], report["bn"]["mirrored"]
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["lcr_lip"], single["lcr_lip"], rtol=1e-4)
    w_single = weights(single, skip=("moving_variance",))
    w_mirrored = weights(mirrored, skip=("moving_variance",))
    assert any("moving_mean" in k for k in w_single)
    for name in w_single:
        np.testing.assert_allclose(w_mirrored[name], w_single[name], atol=1e-5, err_msg=name)


def test_moving_variance_differs_only_by_bessel_correction(report):
    """v_S = m^S + Σ_t (1−m) m^(S−t) · c · var_t with c = n/(n−1): with the same
    batch variances, (v − m^S) scales with c between the two runs."""
    single, mirrored = weights(report["bn"]["single"]), weights(report["bn"]["mirrored"])
    steps = len(report["bn"]["single"]["loss"])
    decay = 0.9**steps  # moving variances start at 1
    counts = report["bn"]["counts"]
    checked = 0
    for layer, per_sample in counts.items():
        name = next(k for k in single if k.startswith(f"{layer}/moving_variance"))
        n_single, n_mirrored = 16 * per_sample, 8 * per_sample
        expected = (n_mirrored / (n_mirrored - 1)) / (n_single / (n_single - 1))
        ratio = (mirrored[name] - decay) / (single[name] - decay)
        np.testing.assert_allclose(ratio, expected, rtol=2e-4, err_msg=name)
        checked += 1
    assert checked == 3


def test_lcr_every_second_step_matches_across_replicas(report):
    single, mirrored = report["every"]["single"], report["every"]["mirrored"]
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["lcr_lip"], single["lcr_lip"], rtol=1e-4)
    w_single, w_mirrored = weights(single), weights(mirrored)
    (step,) = [k for k in w_single if "lcr_schedule" in k]
    assert w_single[step] == w_mirrored[step] == len(single["loss"])  # 3 steps counted
    for name in w_single:
        np.testing.assert_allclose(w_mirrored[name], w_single[name], atol=1e-5, err_msg=name)
    w_every = weights(report["plain"]["single"])
    gap = max(np.max(np.abs(w_every[k] - w_single[k])) for k in w_every)
    assert gap > 1e-3, gap  # LCR on steps 1 and 3 only is another training


def test_evaluation_batches_reach_both_replicas(report):
    """Dataset.for_replicas: every replica gets a sample of every evaluation
    batch, whichever way tf.data splits the last one; as batched, some do not."""
    split = report["split"]
    assert all(rebatched > 0 for _, rebatched in split.values()), split
    assert split["145/16/False"][0] == 0 and split["129/128/True"][0] == 0


def test_mse_form_is_replica_independent(report):
    mse = report["plain_mse"]
    assert mse["single"] > 0
    assert mse["mirrored"] == pytest.approx(mse["single"], rel=1e-4)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mirrored_training_run_under_mixed_precision(report, precision):
    run = report[f"run_{precision}"]
    assert run["replicas"] == 2 and run["mixed_precision"] == precision
    assert 0.0 <= run["test_accuracy"] <= 1.0
    assert run["dtypes"] == [precision]  # every block computes in 16 bits
    assert {"results.json", "bnn.keras", "model.keras", "history.csv"} <= set(run["files"])
    assert "backup" not in run["files"]  # removed once the run finished
    assert run["finite"] and run["policy_after"] == "float32"
    if precision == "float16":
        assert run["optimizer"] == "LossScaleOptimizerV3"
        # Overflowing steps were skipped and the scale halved, not the weights ruined.
        assert len(run["scales"]) == 2 and run["scales"][-1] < 2.0**15, run["scales"]
    else:
        assert run["optimizer"] == "SGD" and run["scales"] == []
