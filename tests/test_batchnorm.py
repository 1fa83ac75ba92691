"""BN statistics of the final weights: exact averages, stale statistics recovered."""

import numpy as np
import pytest
import tensorflow as tf

import lcr_larq
from lcr_larq import layers as L
from lcr_larq.batchnorm import combine_moments, recalibrate_batchnorm


def _batch_norm(x, gamma, beta, eps, axes):
    """Numpy: normalization by the batch's own mean and biased variance."""
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _two_bn_model(rng):
    inputs = tf.keras.Input((5,))
    dense1 = tf.keras.layers.Dense(4)
    bn1 = tf.keras.layers.BatchNormalization(epsilon=1e-3)
    dense2 = tf.keras.layers.Dense(3)
    bn2 = L.BatchNormalization(epsilon=1e-3)
    h = tf.keras.layers.ReLU()(bn1(dense1(inputs)))
    model = tf.keras.Model(inputs, bn2(dense2(h)))
    for bn in (bn1, bn2):  # non-trivial affine parameters
        bn.gamma.assign(rng.uniform(0.5, 2.0, bn.gamma.shape).astype("float32"))
        bn.beta.assign(rng.normal(size=bn.beta.shape).astype("float32"))
    return model, dense1, bn1, dense2, bn2


def test_statistics_equal_numpy_over_the_same_unequal_batches(rng):
    model, dense1, bn1, dense2, bn2 = _two_bn_model(rng)
    x = rng.normal(1.5, 2.0, (81, 5)).astype("float32")
    batches = [x[:32], x[32:64], x[64:]]  # 32, 32, 17: pooled, not a mean of batch means
    report = recalibrate_batchnorm(model, batches)
    assert report == {"layers": 2, "batches": 3, "samples": 81}

    w1, b1 = (v.numpy().astype(np.float64) for v in dense1.weights)
    w2, b2 = (v.numpy().astype(np.float64) for v in dense2.weights)
    h1 = [b.astype(np.float64) @ w1 + b1 for b in batches]
    np.testing.assert_allclose(bn1.moving_mean.numpy(), np.concatenate(h1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), np.concatenate(h1).var(0), rtol=1e-4)
    # The second BN sees the first normalized by each batch's own statistics.
    g1, be1 = bn1.gamma.numpy(), bn1.beta.numpy()
    h2 = [np.maximum(_batch_norm(h, g1, be1, 1e-3, (0,)), 0) @ w2 + b2 for h in h1]
    h2 = np.concatenate(h2)
    np.testing.assert_allclose(bn2.moving_mean.numpy(), h2.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn2.moving_variance.numpy(), h2.var(0), rtol=1e-4)


def test_conv_statistics_pool_over_batch_and_positions(rng):
    inputs = tf.keras.Input((6, 6, 2))
    bn = tf.keras.layers.BatchNormalization()
    model = tf.keras.Model(inputs, bn(inputs))
    x = rng.normal(-3.0, 0.5, (40, 6, 6, 2)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(40))).batch(16)  # (x, y) pairs
    report = recalibrate_batchnorm(model, dataset, max_batches=2)
    assert report["batches"] == 2 and report["samples"] == 32
    used = x[:32].astype(np.float64)
    np.testing.assert_allclose(bn.moving_mean.numpy(), used.mean((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), used.var((0, 1, 2)), rtol=1e-4)


def test_combine_moments_is_exact_for_many_parts(rng):
    values = rng.normal(1e3, 1e-2, 1000)  # mean ≫ spread: naive sums lose it
    total = (0, 0.0, 0.0)
    for part in np.array_split(values, 7):
        total = combine_moments(total, (len(part), part.mean(), part.var() * len(part)))
    n, mean, m2 = total
    assert n == 1000
    np.testing.assert_allclose(mean, values.mean(), rtol=1e-12)
    np.testing.assert_allclose(m2 / n, values.var(), rtol=1e-6)


def _digits_bnn():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    inputs = tf.keras.Input((64,))
    h = tf.keras.layers.Dense(64, use_bias=False)(inputs)
    h = L.BatchNormalization(momentum=0.99)(h)
    for _ in range(2):
        h = L.QuantDense(64, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                         kernel_constraint="weight_clip", use_bias=False)(h)
        h = L.BatchNormalization(momentum=0.99)(h)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(h))
    model.compile(tf.keras.optimizers.Adam(1e-2),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], batch_size=100, epochs=15, verbose=0)
    return model, x, y


def _accuracy(model, x, y, batch_statistics=False):
    if batch_statistics:  # every BN normalizes by the test batch's own statistics
        from lcr_larq.graph import replay

        def call(layer, args, kwargs):
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                return L.normalize_with_batch_statistics(layer, tf.nest.flatten(args)[0])
            return layer(*args, **kwargs)

        logits = replay(model, model.outputs, [tf.constant(x)], call_layer=call)[0]
    else:
        logits = model(x, training=False)
    return float(np.mean(np.argmax(logits, -1) == y))


def test_stale_statistics_recover_the_batch_statistics_accuracy():
    model, x, y = _digits_bnn()
    test_x, test_y = x[1400:], y[1400:]
    batch_accuracy = _accuracy(model, test_x, test_y, batch_statistics=True)
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for bn in bns:  # deliberately stale: the statistics of initialization
        bn.moving_mean.assign(tf.zeros_like(bn.moving_mean))
        bn.moving_variance.assign(tf.ones_like(bn.moving_variance))
    stale = _accuracy(model, test_x, test_y)
    train = tf.data.Dataset.from_tensor_slices(x[:1400]).batch(100)
    recalibrate_batchnorm(model, train)
    recovered = _accuracy(model, test_x, test_y)
    assert batch_accuracy > 0.8
    assert stale < batch_accuracy - 0.2, (stale, batch_accuracy)
    assert recovered == pytest.approx(batch_accuracy, abs=0.03), (recovered, batch_accuracy)


def test_training_model_recalibrates_the_bnn_only(rng):
    """A training model is stripped first: a teacher's statistics stay as they are."""
    from models import build_model

    bnn = build_model("resnet20", (8, 8, 1), 3)
    teacher = build_model("resnet20", (8, 8, 1), 3, quantized=False)
    model = lcr_larq.attach_lcr(bnn, lcr_reference="teacher", teacher=teacher, lcr_samples=0)
    teacher_stats = [w.numpy().copy() for w in teacher.non_trainable_weights]
    x = rng.normal(size=(24, 8, 8, 1)).astype("float32")
    report = recalibrate_batchnorm(model, [x[:12], x[12:]])
    bns = [layer for layer in bnn.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert report["layers"] == len(bns) and report["samples"] == 24
    stem = bnn.get_layer("stem_bn")
    stem_inputs = bnn.get_layer("stem_conv")(x).numpy().astype(np.float64)
    np.testing.assert_allclose(stem.moving_mean.numpy(), stem_inputs.mean((0, 1, 2)), rtol=1e-4,
                               atol=1e-6)
    for before, after in zip(teacher_stats, teacher.non_trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_a_deep_network_is_recalibrated(rng):
    """The graph is walked with a stack: QuickNetLarge's depth once exceeded the
    recursion limit under autograph (several frames a level), as this chain does."""
    inputs = tf.keras.Input((3,))
    x = inputs
    for _ in range(400):
        x = tf.keras.layers.Activation("linear")(x)
    bn = tf.keras.layers.BatchNormalization()
    model = tf.keras.Model(inputs, bn(x))
    x = rng.normal(2.0, 3.0, (40, 3)).astype("float32")
    assert recalibrate_batchnorm(model, [x[:25], x[25:]]) == {
        "layers": 1, "batches": 2, "samples": 40}
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=0), rtol=1e-4)
