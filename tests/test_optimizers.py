"""The papers' optimizers: PyTorch's SGD and Adam semantics, written out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from lcr_larq import optimizers

A = np.array([[2.0, -1.0, 0.5], [0.3, 1.5, -2.0]], np.float32)
B = np.array([1.0, -0.5], np.float32)


def quadratic_gradient(w):
    """Gradient of 0.5·||A w − b||²."""
    return A.T @ (A @ w - B)


def keras_steps(optimizer, steps, w0):
    w = tf.Variable(w0)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(tf.square(tf.linalg.matvec(A, w) - B))
        optimizer.apply_gradients([(tape.gradient(loss, w), w)])
    return w.numpy()


def torch_sgd(w, steps, lrs, momentum, wd):
    """PyTorch's SGD step (torch.optim.SGD, dampening 0): L2 before momentum."""
    w, v = w.astype(np.float64), None
    for t in range(steps):
        g = quadratic_gradient(w) + wd * w
        v = g if v is None else momentum * v + g
        w = w - lrs[t] * v
    return w


def torch_adam(w, steps, lr, wd, decoupled, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's Adam (L2 in the gradient) and AdamW (w ← w·(1 − lr·wd))."""
    w = w.astype(np.float64)
    m = v = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = quadratic_gradient(w)
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        w = w - lr / (1 - b1**t) * m / denom
    return w


W0 = np.array([0.7, -1.2, 0.4], np.float32)


def test_coupled_sgd_matches_pytorch_over_steps_with_momentum_and_a_schedule():
    steps = 12
    schedule = optimizers.WarmupDecay(0.05, total=steps, warmup=2)  # lr changes every step
    lrs = [float(schedule(t)) for t in range(steps)]
    sgd = optimizers.SGD(schedule, momentum=0.9, weight_decay=0.05)
    got = keras_steps(sgd, steps, W0)
    np.testing.assert_allclose(got, torch_sgd(W0, steps, lrs, 0.9, 0.05), rtol=2e-6, atol=1e-7)
    # Keras' SGD keeps lr·g in its velocity: with a changing rate it is another optimizer.
    keras = keras_steps(tf.keras.optimizers.SGD(schedule, momentum=0.9), steps, W0)
    assert not np.allclose(keras, torch_sgd(W0, steps, lrs, 0.9, 0.0), rtol=1e-4)


def test_decoupled_sgd_matches_keras_weight_decay():
    ours = optimizers.SGD(0.05, momentum=0.9, weight_decay=0.05, decoupled=True)
    keras = tf.keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.05)
    np.testing.assert_allclose(keras_steps(ours, 10, W0), keras_steps(keras, 10, W0), rtol=1e-5)


def test_coupled_decay_is_about_ten_times_keras_at_momentum_0_9():
    """1,000 steps with zero loss gradient (lr 0.1, wd 1e-4, μ 0.9)."""
    def shrink(optimizer):
        w = tf.Variable([1.0])
        for _ in range(1000):
            optimizer.apply_gradients([(tf.zeros(1), w)])
        return float(w[0])

    coupled = shrink(optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4))
    decoupled = shrink(optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4, decoupled=True))
    keras = shrink(tf.keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4))
    assert decoupled == pytest.approx((1 - 1e-5) ** 1000, rel=1e-5) == pytest.approx(keras)
    # Momentum amplifies the L2 term by 1/(1 − μ): about (1 − 1e-4)^1000 after the start.
    assert coupled == pytest.approx(0.906, abs=2e-3)
    assert 9 < (1 - coupled) / (1 - decoupled) < 10


@pytest.mark.parametrize("name, decoupled", [("adam", False), ("adamw", True)])
def test_adam_and_adamw_match_pytorch(name, decoupled):
    optimizer = optimizers.make_optimizer(name, 0.01, weight_decay=0.1)
    assert optimizer.decoupled is decoupled
    got = keras_steps(optimizer, 15, W0)
    np.testing.assert_allclose(got, torch_adam(W0, 15, 0.01, 0.1, decoupled), rtol=1e-5)


def test_weight_decay_on_conv_kernels_only():
    kernel = tf.Variable(tf.ones((1, 1, 1, 2)))
    bias = tf.Variable(tf.ones(2))
    sgd = optimizers.SGD(0.1, momentum=0.0, weight_decay=0.5, decay_on="conv-kernels")
    sgd.apply_gradients([(tf.zeros_like(kernel), kernel), (tf.zeros_like(bias), bias)])
    np.testing.assert_allclose(kernel.numpy().ravel(), [0.95, 0.95])
    np.testing.assert_allclose(bias.numpy(), [1.0, 1.0])


def test_per_epoch_cosine_is_pytorch_cosine_annealing():
    epochs, steps = 7, 3
    schedule = optimizers.WarmupDecay(0.1, total=epochs, steps_per_unit=steps)
    for epoch in range(epochs):
        expected = 0.1 * (1 + math.cos(math.pi * epoch / epochs)) / 2  # CosineAnnealingLR
        for step in range(epoch * steps, (epoch + 1) * steps):
            assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)
    linear = optimizers.WarmupDecay(1.0, total=4, decay="linear", warmup=1)
    assert [float(linear(s)) for s in range(5)] == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 0.0])


def test_optimizer_and_schedule_survive_saving(tmp_path):
    inputs = tf.keras.Input((3,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))
    schedule = optimizers.WarmupDecay(0.1, total=5, warmup=1, steps_per_unit=2)
    model.compile(optimizers.make_optimizer("sgd", schedule, 1e-4, decay_on="conv-kernels"),
                  "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras")
    config = loaded.optimizer.get_config()
    assert type(loaded.optimizer) is optimizers.SGD
    assert config["weight_decay"] == 1e-4 and config["decay_on"] == "conv-kernels"
    assert not config["decoupled"]
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(schedule(2)))


def test_adamw_with_coupled_decay_is_refused():
    with pytest.raises(ValueError, match="use adam"):
        optimizers.make_optimizer("adamw", 1e-3, 1e-2, weight_decay_mode="coupled")
