"""LCR compiled by XLA (``jit_compile=True``): the training step computes what
the TensorFlow graph computes, for LCR on every step and on every 2nd, on the
whole batch and on its first samples. One power iteration per spectral norm
throughout: the number of iterations changes nothing XLA does differently,
and each one more is more graph to trace and compile."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import batch, small_bnn

import lcr_larq
from lcr_larq import layers

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

#: Tolerances of XLA against the graph, float32 both. XLA fuses ops and runs
#: its own convolution and reduction kernels, so sums are taken in another
#: order: each result moves by float32 rounding (6e-8 relative per
#: operation), grown through the layers, the power iteration and, backwards,
#: the batch normalizations' mean subtraction. Measured with five power
#: iterations: ≤ 6e-7 on the loss and L_lip, ≤ 4e-6 on the gradients
#: (relative to each one's largest entry). The bounds are 1e-5 and 2e-5;
#: any other difference (a term left out, a sample more or less, a step
#: with LCR against one without) is ≥ 1e-3.
LOSS_RTOL = 1e-5
GRADIENT_TOL = 2e-5


def steps(model, x, y, count, jit_compile):
    """``count`` training steps' (loss, L_lip, gradients), from the model's
    current weights, which are restored afterwards (BN statistics and the
    LCR schedule included)."""
    initial = [w.numpy() for w in model.weights]

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            lip = tf.add_n(model.losses)
            loss = CE(y, logits) + lip
        return loss, lip, tape.gradient(loss, model.trainable_weights)

    results = [step(x, y) for _ in range(count)]
    for w, value in zip(model.weights, initial):
        w.assign(value)
    return results


@pytest.mark.parametrize("every,samples", [(1, 0), (1, 4), (2, 0), (2, 4)])
def test_xla_step_equals_the_graph_step(rng, every, samples):
    """Loss, L_lip and every gradient of the first ``every`` steps (with
    every=2: a step with LCR, then one without) agree with and without XLA."""
    model = lcr_larq.attach_lcr(
        small_bnn(), lcr_every=every, lcr_samples=samples, power_iterations=1
    )
    x, y = batch(rng)
    graph = steps(model, x, y, every, jit_compile=False)
    xla = steps(model, x, y, every, jit_compile=True)
    lips = []
    for (loss, lip, gradients), (xla_loss, xla_lip, xla_gradients) in zip(graph, xla):
        np.testing.assert_allclose(float(xla_loss), float(loss), rtol=LOSS_RTOL)
        np.testing.assert_allclose(float(xla_lip), float(lip), rtol=LOSS_RTOL)
        for g, xla_g in zip(gradients, xla_gradients):
            scale = float(tf.reduce_max(tf.abs(g)))
            np.testing.assert_allclose(xla_g, g, rtol=0, atol=GRADIENT_TOL * scale)
        lips.append(float(lip))
    assert lips[0] > 1e-3  # LCR contributes: the comparison covers it
    if every == 2:
        assert lips[1] == 0.0  # and the step without LCR has none


def test_keras_fit_with_jit_compile_trains_as_without(rng):
    """``compile(jit_compile=True)``: two steps of ``fit`` (LCR on the 1st,
    not on the 2nd; the defaults: the first 32 samples, every 2nd step) move
    the weights as without XLA, up to float32 rounding."""
    x, y = batch(rng, 64)
    trained = []
    for jit_compile in (False, True):
        tf.keras.utils.set_random_seed(3)
        model = lcr_larq.attach_lcr(small_bnn(), power_iterations=1)
        model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss=CE, jit_compile=jit_compile)
        history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        trained.append(([w.numpy() for w in model.weights], history.history["lcr_lip"][0]))
    (graph_weights, graph_lip), (xla_weights, xla_lip) = trained
    assert graph_lip > 0 and xla_lip == pytest.approx(graph_lip, rel=LOSS_RTOL)
    for graph_w, xla_w in zip(graph_weights, xla_weights):
        np.testing.assert_allclose(xla_w, graph_w, rtol=1e-4, atol=1e-6)


def test_lcr_that_finds_its_steps_by_empty_features_is_refused(rng):
    """A model attached without passing the schedule's count to the LCR layer
    (an earlier lcr-larq) cannot be compiled: check_jit_compile says so in
    one line, and so does the layer when traced under XLA."""
    model = lcr_larq.attach_lcr(small_bnn(), lcr_samples=4, lcr_every=2, power_iterations=1)
    lcr_larq.check_jit_compile(model)  # the current wiring compiles
    inputs = lcr_larq.lcr_layer(model).input
    older = tf.keras.Model(
        model.inputs,
        layers.LipschitzRetention(lcr_samples=4, lcr_every=2, power_iterations=1,
                                  name="lcr")(inputs),
    )
    with pytest.raises(ValueError, match="XLA cannot compile: attach LCR again") as error:
        lcr_larq.check_jit_compile(older)
    assert "\n" not in str(error.value)
    x, y = batch(rng)
    older.compile(optimizer="sgd", loss=CE, jit_compile=True)
    with pytest.raises(ValueError, match="XLA cannot compile"):
        older.train_on_batch(x, y)
    older.compile(optimizer="sgd", loss=CE)  # without XLA it trains
    older.train_on_batch(x, y)
