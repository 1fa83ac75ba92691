"""IR-Net quantizers against their definitions, and the EDE schedule."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from lcr_larq import callbacks, quantizers
from models import build_model


def test_ede_forward_is_sign_and_backward_matches_formula():
    x = tf.constant(np.linspace(-2, 2, 41), tf.float32)
    for t in (0.1, 1.0, 10.0):
        k = max(1 / t, 1.0)
        q = quantizers.EDESign(t=t)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = q(x)
        grad = tape.gradient(y, x).numpy()
        np.testing.assert_array_equal(y.numpy(), np.where(x.numpy() >= 0, 1.0, -1.0))
        expected = k * t * (1 - np.tanh(t * x.numpy()) ** 2)
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


def test_ede_parameters_follow_log_schedule():
    assert quantizers.ede_parameters(0.0) == (0.1, 10.0)
    t, k = quantizers.ede_parameters(0.5)
    np.testing.assert_allclose((t, k), (1.0, 1.0))
    t, k = quantizers.ede_parameters(1.0)
    np.testing.assert_allclose((t, k), (10.0, 1.0))


def test_libra_sign_balances_standardizes_and_scales(rng):
    w = tf.constant(rng.normal(1.0, 3.0, size=(3, 3, 8, 4)), tf.float32)
    q = quantizers.LibraSign(t=1.0)
    out = q(w).numpy()
    flat = w.numpy().reshape(-1, 4)
    standardized = (flat - flat.mean(0)) / flat.std(0, ddof=1)
    scale = 2.0 ** np.round(np.log2(np.abs(standardized).mean(0)))
    expected = np.where(standardized >= 0, 1.0, -1.0) * scale
    np.testing.assert_allclose(out.reshape(-1, 4), expected, rtol=1e-6)
    # Balanced: the sign of a shifted kernel does not depend on the shift.
    np.testing.assert_array_equal(q(w + 100.0).numpy(), out)


def test_libra_sign_gradient_flows_through_standardization(rng):
    w = tf.Variable(rng.normal(size=(3, 3, 2, 2)).astype(np.float32))
    q = quantizers.LibraSign(t=1.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(q(w) * tf.constant(rng.normal(size=(3, 3, 2, 2)), tf.float32))
    grad = tape.gradient(loss, w).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    # Standardization removes the mean: per output channel the gradient sums to 0.
    np.testing.assert_allclose(grad.reshape(-1, 2).sum(0), 0.0, atol=1e-4)


def test_quantizers_serialize_with_their_state():
    q = quantizers.EDESign(t=3.0)
    clone = quantizers.EDESign.from_config(q.get_config())
    assert float(clone.t) == 3.0 and float(clone.k) == 1.0


def test_ede_schedule_callback_sets_every_quantizer():
    model = build_model("resnet20", (8, 8, 1), 2)
    schedule = callbacks.EDESchedule(epochs=4)
    schedule.set_model(model)
    schedule.on_epoch_begin(2)
    found = [q for q in quantizers.quantizers_of(model)
             if isinstance(q, quantizers.EDEQuantizer)]
    assert len(found) == 2 * 18  # input and kernel quantizer of 18 binary convs
    expected_t = 0.1 * 100 ** 0.5
    for q in found:
        np.testing.assert_allclose((float(q.t), float(q.k)), (expected_t, 1.0), rtol=1e-6)


def _fit(model, callbacks_):
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    model.fit(x, np.zeros(8, "int32"), epochs=1, verbose=0, callbacks=callbacks_)


def test_ede_quantizers_without_their_schedule_warn_at_fit():
    with pytest.warns(UserWarning, match="without EDESchedule"):
        _fit(build_model("resnet20", (8, 8, 1), 2), [])


def test_schedules_for_gives_the_callbacks_and_no_warning():
    import warnings

    model = build_model("resnet20", (8, 8, 1), 2)
    found = callbacks.schedules_for(model, epochs=1, steps_per_epoch=1)
    assert [type(c) for c in found] == [callbacks.EDESchedule]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(model, found)
    prox = build_model("resnet20", (8, 8, 1), 2, weight_quantizer="proxconnect")
    (schedule,) = callbacks.schedules_for(prox, 4, 3, {"prox_rho_end": 5.0, "prox_hard_epochs": 1})
    assert isinstance(schedule, callbacks.ProxConnectSchedule)
    assert schedule.rho_end == 5.0 and schedule.hard_epochs == 1
    assert schedule.hard_validation and schedule.hard_at_end
    full_precision = build_model("resnet20", (8, 8, 1), 2, quantized=False)
    assert callbacks.schedules_for(full_precision, 1, 1) == []


def test_prox_gradient_ste_reaches_the_model_as_the_identity():
    from lcr_larq import training
    from lcr_larq.training import TrainConfig

    for gradient in ("prox", "ste"):
        config = TrainConfig(weight_quantizer="proxconnect", prox_gradient=gradient, lcr_lambda=0)
        model = training.build_training_model(config, (8, 8, 1), 2)
        quantizer = model.get_layer("block1_conv1").kernel_quantizer
        quantizer.set_rho(10.0)  # ramp only for |w| < 1/11: most weights are flat
        w = tf.Variable(np.linspace(-1, 1, 41, dtype="float32"))
        with tf.GradientTape() as tape:
            out = tf.reduce_sum(quantizer(w) * tf.range(41, dtype=tf.float32))
        grad = tape.gradient(out, w).numpy()
        if gradient == "ste":
            np.testing.assert_array_equal(grad, np.arange(41, dtype="float32"))
        else:
            assert np.count_nonzero(grad) < 5


def test_larqs_clipping_warning_is_kept_for_sign_weights_and_dropped_for_libra_sign(caplog):
    """Larq warns that a binary kernel without clipping may starve; LibraSign
    standardizes first, so for its layers (made or loaded) the warning is dropped,
    and only while they are made."""
    from lcr_larq import layers as L

    def warnings_of(make):
        caplog.clear()
        with caplog.at_level("WARNING", logger="larq.layers_base"):
            layer = make()
        return layer, [r for r in caplog.records if "kernel_constraint" in r.getMessage()]

    _, sign = warnings_of(lambda: L.QuantConv2D(4, 3, kernel_quantizer="ste_sign"))
    libra, none = warnings_of(lambda: L.QuantConv2D(4, 3, kernel_quantizer=quantizers.LibraSign()))
    _, loaded = warnings_of(lambda: L.QuantConv2D.from_config(libra.get_config()))
    _, dense = warnings_of(lambda: L.QuantDense(4, kernel_quantizer="libra_sign"))
    assert len(sign) == 1 and none == loaded == dense == []
    assert isinstance(libra.kernel_quantizer, quantizers.LibraSign)
    assert logging.getLogger("larq.layers_base").filters == []
