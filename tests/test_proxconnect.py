"""Tests for the ProxConnect quantizers and their rho schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from lcr_larq.callbacks import ProxConnectSchedule
from lcr_larq.quantizers import ProxSign, prox_sign, quantizers_of


def find_prox_quantizers(model):
    return [q for q in quantizers_of(model) if isinstance(q, ProxSign)]

RHOS = [0.0, 0.5, 3.0, 50.0]


def _np(x: tf.Tensor) -> np.ndarray:
    return np.asarray(x.numpy(), dtype=np.float64)


def _ref_sign(w: np.ndarray, rho: float) -> np.ndarray:
    return np.sign(w) * np.minimum(1.0, (1.0 + rho) * np.abs(w))


def _sign_kinks(rho: float) -> list[float]:
    return [-1.0 / (1.0 + rho), 1.0 / (1.0 + rho)]


# --------------------------------------------------------------------------------
# The maps L_rho
# --------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [prox_sign])
@pytest.mark.parametrize("rho", [*RHOS, 1e6])
def test_monotone_and_bounded(fn: Any, rho: float) -> None:
    w = np.linspace(-3.0, 3.0, 6001, dtype=np.float32)
    out = _np(fn(tf.constant(w), rho))
    assert np.all(np.diff(out) >= 0.0)
    assert out.min() == -1.0 and out.max() == 1.0
    assert np.all(np.abs(out) <= 1.0)


@pytest.mark.parametrize("fn", [prox_sign])
def test_rho_zero_is_clipping(fn: Any) -> None:
    w = np.linspace(-3.0, 3.0, 601, dtype=np.float32)
    out = _np(fn(tf.constant(w), 0.0))
    np.testing.assert_allclose(out, np.clip(w, -1.0, 1.0), atol=1e-6)
    inside = np.abs(w) <= 1.0
    np.testing.assert_allclose(out[inside], w[inside], atol=1e-6)


def test_prox_sign_large_rho_is_sign() -> None:
    w = np.concatenate(
        [np.linspace(-2.0, -1.01e-5, 2000), np.linspace(1.01e-5, 2.0, 2000)]
    ).astype(np.float32)
    out = _np(prox_sign(tf.constant(w), 1e6))
    np.testing.assert_array_equal(out, np.sign(w))


@pytest.mark.parametrize("rho", RHOS)
def test_maps_match_closed_forms_and_flat_zones(rho: float) -> None:
    w = np.linspace(-2.0, 2.0, 801, dtype=np.float32)
    np.testing.assert_allclose(
        _np(prox_sign(tf.constant(w), rho)), _ref_sign(w, rho), atol=1e-6
    )
    # The binary map is flat at +-1 exactly from |w| = 1/(1+rho) on.
    edge = 1.0 / (1.0 + rho)
    assert _np(prox_sign(tf.constant([edge * 1.01, -edge * 1.01]), rho)).tolist() == [
        1.0,
        -1.0,
    ]


@pytest.mark.parametrize(
    ("fn", "q_points"),
    [(prox_sign, [-1.0, 1.0])],
)
@pytest.mark.parametrize("rho", [0.5, 3.0])
def test_map_is_proximal_map_of_the_documented_regulariser(
    fn: Any, q_points: list[float], rho: float
) -> None:
    """Brute-force argmin_z 1/2 (z - w)^2 + r_rho(z) over a fine grid of conv Q."""
    z = np.linspace(-1.0, 1.0, 200001)
    q = np.asarray(q_points)
    idx = np.clip(np.searchsorted(q, z, side="right") - 1, 0, len(q) - 2)
    reg = rho / (2.0 * (1.0 + rho)) * (z - q[idx]) * (q[idx + 1] - z)
    w = np.linspace(-1.6, 1.6, 161)
    argmins = np.array([z[np.argmin(0.5 * (z - wi) ** 2 + reg)] for wi in w])
    out = _np(fn(tf.constant(w, dtype=tf.float32), rho))
    np.testing.assert_allclose(out, argmins, atol=2e-4)


# --------------------------------------------------------------------------------
# Quantizer forward / backward
# --------------------------------------------------------------------------------


def _grad_through(
    quantizer: ProxSign, w: np.ndarray, upstream: np.ndarray
) -> np.ndarray:
    var = tf.Variable(w)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantizer(var) * tf.constant(upstream))
    return _np(tape.gradient(loss, var))


def _points_away_from(kinks: list[float], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.5, 1.5, size=4 * n)
    dist = np.min(np.abs(w[:, None] - np.asarray(kinks)[None, :]), axis=1)
    return w[dist > 5e-3][:n].astype(np.float32)


@pytest.mark.parametrize(
    ("cls", "ref", "kinks"),
    [(ProxSign, _ref_sign, _sign_kinks)],
)
@pytest.mark.parametrize("rho", RHOS)
def test_prox_gradient_matches_finite_differences(
    cls: type[ProxSign], ref: Any, kinks: Any, rho: float
) -> None:
    w = _points_away_from(kinks(rho), 200, seed=int(rho * 10))
    upstream = np.random.default_rng(1).normal(size=w.shape).astype(np.float32)
    grad = _grad_through(cls(rho=rho, gradient="prox"), w, upstream)

    eps = 1e-4
    w64 = w.astype(np.float64)
    fd = (ref(w64 + eps, rho) - ref(w64 - eps, rho)) / (2 * eps)
    np.testing.assert_allclose(grad, upstream * fd, rtol=1e-4, atol=1e-4)
    # The test points cover both the ramps and the flat parts.
    assert np.any(fd == 0.0) and np.any(fd > 0.0)


@pytest.mark.parametrize("cls", [ProxSign])
@pytest.mark.parametrize("hard", [False, True])
def test_ste_gradient_is_identity(cls: type[ProxSign], hard: bool) -> None:
    w = np.linspace(-2.0, 2.0, 101, dtype=np.float32)
    upstream = np.random.default_rng(2).normal(size=w.shape).astype(np.float32)
    grad = _grad_through(cls(rho=3.0, gradient="ste", hard=hard), w, upstream)
    np.testing.assert_array_equal(grad, upstream)


def test_hard_forward_and_prox_gradient_in_hard_phase() -> None:
    w = np.array([-2.0, -0.3, -0.05, 0.0, 0.05, 0.3, 2.0], dtype=np.float32)
    sign_q = ProxSign(rho=1.0, hard=True)
    np.testing.assert_array_equal(_np(sign_q(tf.constant(w))), [-1, -1, -1, 1, 1, 1, 1])
    # In "prox" mode the backward pass stays the derivative of L_rho.
    grad = _grad_through(sign_q, w, np.ones_like(w))
    np.testing.assert_array_equal(grad, [0, 2, 2, 2, 2, 2, 0])


def test_rho_and_hard_are_read_at_run_time() -> None:
    quantizer = ProxSign(rho=0.0)
    w = tf.constant([0.25, -0.75])
    quantizer(w)  # build eagerly so the traced function owns no variable creation

    @tf.function
    def run(x: tf.Tensor) -> tf.Tensor:
        return quantizer(x)

    np.testing.assert_allclose(_np(run(w)), [0.25, -0.75])
    quantizer.set_rho(1.0)
    np.testing.assert_allclose(_np(run(w)), [0.5, -1.0])
    quantizer.set_hard(True)
    np.testing.assert_allclose(_np(run(w)), [1.0, -1.0])
    assert run.experimental_get_tracing_count() == 1


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        ProxSign(gradient="identity")
    with pytest.raises(ValueError):
        ProxSign(rho=-1.0)
    with pytest.raises(ValueError):
        ProxConnectSchedule(epochs=2, steps_per_epoch=3, rho_end=1.0, hard_epochs=3)


# --------------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ProxSign])
def test_get_config_round_trip_keeps_current_rho(cls: type[ProxSign]) -> None:
    quantizer = cls(rho=1.5, gradient="ste")
    quantizer(tf.zeros((2, 3)))  # build
    quantizer.set_rho(7.25)
    quantizer.set_hard(True)
    config = quantizer.get_config()
    assert config["rho"] == 7.25 and config["gradient"] == "ste" and config["hard"]

    clone = cls.from_config(config)
    assert clone.rho_value == 7.25 and clone.gradient == "ste" and clone.hard_value
    w = tf.constant([[-0.3, 0.05, 0.9], [0.6, -0.01, -2.0]])
    np.testing.assert_array_equal(_np(clone(w)), _np(quantizer(w)))

    restored = lq.quantizers.get(lq.quantizers.serialize(quantizer))
    assert isinstance(restored, cls) and restored.rho_value == 7.25
    assert cls.precision == 1


def test_string_alias() -> None:
    assert isinstance(lq.quantizers.get("prox_sign"), ProxSign)


def _tiny_model(quantizer: ProxSign, units: int = 3) -> tf.keras.Model:
    inputs = tf.keras.Input((6,))
    outputs = lq.layers.QuantDense(
        units,
        kernel_quantizer=quantizer,
        kernel_constraint=lq.constraints.WeightClip(1.0),
        kernel_initializer=tf.keras.initializers.RandomUniform(-1.0, 1.0),
    )(inputs)
    return tf.keras.Model(inputs, outputs)


def test_keras_save_load_keeps_rho_and_gradient(tmp_path: Path) -> None:
    model = _tiny_model(ProxSign(rho=0.0, gradient="ste"))
    quantizer = model.layers[1].kernel_quantizer
    quantizer.set_rho(4.25)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    expected = model.predict(x, verbose=0)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    loaded_q = loaded.layers[1].kernel_quantizer
    assert isinstance(loaded_q, ProxSign)
    assert loaded_q.rho_value == 4.25
    assert loaded_q.gradient == "ste"
    assert not loaded_q.hard_value
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)


# --------------------------------------------------------------------------------
# Schedule callback
# --------------------------------------------------------------------------------


class _Recorder(tf.keras.callbacks.Callback):
    """Records (global step, rho, hard) seen at each batch and during validation."""

    def __init__(self, quantizer: ProxSign) -> None:
        super().__init__()
        self.quantizer = quantizer
        self.train: list[tuple[int, float, bool]] = []
        self.test_hard: list[bool] = []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        self.train.append((step, self.quantizer.rho_value, self.quantizer.hard_value))

    def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.test_hard.append(self.quantizer.hard_value)


def _data(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.sign(x @ rng.normal(size=(6, 3))).astype(np.float32)
    return x, y


def test_schedule_moves_rho_exactly_and_ends_hard() -> None:
    tf.keras.utils.set_random_seed(0)
    quantizer = ProxSign(rho=0.0)
    model = _tiny_model(quantizer)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    x, y = _data()
    epochs, spe, rho_start, rho_end = 4, 4, 0.5, 10.0
    schedule = ProxConnectSchedule(
        epochs=epochs,
        steps_per_epoch=spe,
        rho_start=rho_start,
        rho_end=rho_end,
        hard_epochs=1,
        hard_validation=True,
    )
    recorder = _Recorder(quantizer)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        validation_data=(x[:8], y[:8]),
        callbacks=[schedule, recorder],
        verbose=0,
    )
    total = (epochs - 1) * spe
    steps = [s for s, _, _ in recorder.train]
    assert steps == list(range(epochs * spe))
    for step, rho, hard in recorder.train:
        expected = rho_start + (rho_end - rho_start) * min(1.0, step / total)
        assert rho == pytest.approx(expected, rel=1e-6)
        assert hard == (step >= total)
    # rho is logged at the end of each epoch (value of its last batch).
    expected_logged = [
        rho_start + (rho_end - rho_start) * min(1.0, (e * spe + spe - 1) / total)
        for e in range(epochs)
    ]
    np.testing.assert_allclose(history.history["rho"], expected_logged, rtol=1e-6)
    assert history.history["prox_hard"] == [0.0, 0.0, 0.0, 1.0]
    # Validation ran with the hard quantizer and training state was restored.
    assert recorder.test_hard and all(recorder.test_hard)
    assert recorder.train[total - 1][2] is False
    assert quantizer.hard_value and quantizer.rho_value == rho_end


def test_schedule_resumes_from_optimizer_iterations() -> None:
    tf.keras.utils.set_random_seed(1)
    quantizer = ProxSign(rho=0.0)
    model = _tiny_model(quantizer)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    x, y = _data()

    def schedule() -> ProxConnectSchedule:
        return ProxConnectSchedule(epochs=3, steps_per_epoch=4, rho_end=6.0)

    model.fit(x, y, batch_size=8, epochs=1, callbacks=[schedule()], verbose=0)
    recorder = _Recorder(quantizer)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        initial_epoch=1,
        callbacks=[schedule(), recorder],
        verbose=0,
    )
    assert [s for s, _, _ in recorder.train] == list(range(4, 12))
    assert [r for _, r, _ in recorder.train] == pytest.approx(
        [6.0 * min(1.0, s / 8) for s in range(4, 12)]
    )
    assert [h for _, _, h in recorder.train] == [False] * 4 + [True] * 4


def test_schedule_without_hard_epochs_and_hard_at_end() -> None:
    quantizer = ProxSign(rho=0.0)
    model = _tiny_model(quantizer)
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(16)
    recorder = _Recorder(quantizer)
    cb = ProxConnectSchedule(
        epochs=2, steps_per_epoch=2, rho_end=3.0, hard_epochs=0, hard_at_end=True
    )
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[cb, recorder], verbose=0)
    assert [r for _, r, _ in recorder.train] == pytest.approx([0.0, 0.75, 1.5, 2.25])
    assert not any(h for _, _, h in recorder.train)
    assert quantizer.hard_value


def test_find_prox_quantizers_walks_nested_models() -> None:
    shared = ProxSign(rho=0.0)
    direct = ProxSign(rho=0.0)
    act_q = ProxSign(rho=0.0)
    inner = tf.keras.Sequential(
        [
            tf.keras.Input((6,)),
            lq.layers.QuantDense(
                4, kernel_quantizer=shared, kernel_constraint="weight_clip"
            ),
            direct,
        ]
    )
    inputs = tf.keras.Input((6,))
    h = inner(inputs)
    h = lq.layers.QuantDense(
        4,
        input_quantizer=act_q,
        kernel_quantizer=shared,
        kernel_constraint="weight_clip",
    )(h)
    h = lq.layers.QuantConv1D(
        2,
        1,
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )(tf.keras.layers.Reshape((4, 1))(h))
    model = tf.keras.Model(inputs, h)
    found = find_prox_quantizers(model)
    assert len(found) == 3
    assert {id(q) for q in found} == {id(shared), id(direct), id(act_q)}


class _Block(tf.keras.layers.Layer):
    """A custom (non-model) layer that owns a quantized layer as an attribute."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = lq.layers.QuantDense(
            3, kernel_quantizer=ProxSign(rho=0.0), kernel_constraint="weight_clip"
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.dense(inputs)


def test_find_prox_quantizers_inside_custom_layers() -> None:
    inputs = tf.keras.Input((6,))
    block = _Block()
    model = tf.keras.Model(inputs, block(inputs))
    assert find_prox_quantizers(model) == [block.dense.kernel_quantizer]


# --------------------------------------------------------------------------------
# Training end to end
# --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "gradient", "values"),
    [(ProxSign, "prox", {-1.0, 1.0}), (ProxSign, "ste", {-1.0, 1.0})],
)
def test_training_ends_with_exactly_quantized_weights(
    cls: type[ProxSign], gradient: str, values: set[float]
) -> None:
    tf.keras.utils.set_random_seed(3)
    quantizer = cls(rho=0.0, gradient=gradient)
    model = _tiny_model(quantizer, units=8)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x, y = _data(64, seed=3)
    y = np.concatenate([y, -y, y[:, :2]], axis=1)
    layer = model.layers[1]

    class _SoftCheck(tf.keras.callbacks.Callback):
        soft_kernel: np.ndarray | None = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 0:
                with lq.context.quantized_scope(True):
                    self.soft_kernel = layer.kernel.numpy()

    soft = _SoftCheck()
    cb = ProxConnectSchedule(epochs=3, steps_per_epoch=4, rho_end=5.0)
    history = model.fit(x, y, batch_size=16, epochs=3, callbacks=[cb, soft], verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))

    # During the soft phase the quantized kernel is not yet in Q ...
    assert soft.soft_kernel is not None
    assert not set(np.unique(soft.soft_kernel).tolist()) <= values
    # ... after the final hard phase it is exactly in Q.
    with lq.context.quantized_scope(True):
        kernel = layer.kernel.numpy()
    assert set(np.unique(kernel).tolist()) <= values
    latent = layer.kernel.latent_variable.numpy()
    assert np.all(np.abs(latent) <= 1.0)
    assert not np.array_equal(kernel, latent)
