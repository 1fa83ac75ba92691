"""LCR on every k-th training step (``every``): the loss and gradient of an
active step are k times those of LCR on every step, the other steps are the
plain BNN's, and the schedule survives saving, evaluation and tf.distribute."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import batch, small_bnn

import lcr_larq
from lcr_larq import layers

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def schedule_of(model) -> layers.ScheduledSampleCount:
    (schedule,) = [la for la in model.layers if isinstance(la, layers.ScheduledSampleCount)]
    return schedule


def loss_and_gradients(model, weights, x, y, lcr_scale=1.0):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        lcr = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
        loss = CE(y, logits) + lcr_scale * lcr
    return float(lcr), logits.numpy(), tape.gradient(loss, weights)


def test_count_is_the_samples_on_every_kth_training_step():
    count = layers.ScheduledSampleCount(samples=3, every=3)
    x = tf.zeros((5, 2))
    assert [int(count(x, training=True)) for _ in range(7)] == [3, 0, 0, 3, 0, 0, 3]
    assert int(count.step) == 7
    assert [int(count(x)), int(count(x, training=False))] == [3, 3]  # not counted
    assert int(count.step) == 7
    whole = layers.ScheduledSampleCount(samples=0, every=2)
    assert [int(whole(x, training=True)) for _ in range(3)] == [5, 0, 5]  # 0: the batch
    assert int(layers.ScheduledSampleCount(samples=9, every=2)(x, training=True)) == 5
    clone = layers.ScheduledSampleCount.from_config(count.get_config())
    assert (clone.samples, clone.every) == (3, 3)
    with pytest.raises(ValueError, match="step interval must be >= 1"):
        layers.ScheduledSampleCount(samples=3, every=0)
    with pytest.raises(ValueError, match="step interval must be >= 1"):
        lcr_larq.attach_lcr(small_bnn(), lcr_every=0)


def test_the_default_is_every_second_step():
    model = lcr_larq.attach_lcr(small_bnn())
    assert lcr_larq.lcr_layer(model).lcr_every == schedule_of(model).every == 2
    assert lcr_larq.graph.DEFAULT_EVERY == 2


@pytest.mark.parametrize("reference", ["latent", "teacher"])
def test_active_step_is_k_times_lcr_and_the_others_are_the_plain_bnn(rng, reference):
    tf.keras.utils.set_random_seed(5)
    bnn = small_bnn()
    # A teacher runs on one sample between LCR steps, as the latent path does.
    kwargs = {"lcr_reference": reference, "teacher": small_bnn(quantized=False)
              if reference == "teacher" else None}
    # Both models share the BNN's layers, so their weights are the same ones.
    every_step = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3, lcr_every=1, **kwargs)
    every_third = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3, lcr_every=3, **kwargs)
    weights = bnn.trainable_weights
    x, y = batch(rng)
    lip_1, logits_1, grads_1 = loss_and_gradients(every_step, weights, x, y, lcr_scale=3.0)
    _, logits_0, grads_0 = loss_and_gradients(bnn, weights, x, y)
    assert lip_1 > 0
    for step in range(4):
        lip, logits, grads = loss_and_gradients(every_third, weights, x, y)
        np.testing.assert_allclose(logits, logits_0, rtol=1e-5, atol=1e-6)
        expected_lip, expected_grads = (3 * lip_1, grads_1) if step % 3 == 0 else (0.0, grads_0)
        np.testing.assert_allclose(lip, expected_lip, rtol=1e-5)
        for a, b in zip(grads, expected_grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    assert int(schedule_of(every_third).step) == 4


def test_fit_counts_steps_and_evaluate_weighs_lcr_as_every_step(rng):
    tf.keras.utils.set_random_seed(6)
    bnn = small_bnn()
    # One power iteration: both models compute the same σ estimates either way.
    every_step = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3, lcr_every=1,
                                     power_iterations=1)
    every_second = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3, lcr_every=2,
                                       power_iterations=1)
    x, y = batch(rng, 16)
    for model in (every_step, every_second):
        model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss=CE)
    # Evaluation adds λ/2·L_lip at every batch, as LCR on every step does.
    a = every_step.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    b = every_second.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert a.keys() == b.keys() and a["lcr_lip"] > 0
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, err_msg=name)
    assert int(schedule_of(every_second).step) == 0
    # Training: 4 steps, LCR on the 1st and 3rd; lcr_lip is their mean (the
    # learning rate is 0, so both see the weights LCR on every step saw).
    history = every_second.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert int(schedule_of(every_second).step) == 4
    lips = []
    for i in (0, 8):
        every_step(x[i : i + 4], training=True)
        lips.append(float(every_step.losses[0]) / 2.0)  # λ/2 = 2
    np.testing.assert_allclose(history.history["lcr_lip"][0], np.mean(lips), rtol=1e-4)


def test_saved_model_resumes_the_schedule(tmp_path, rng):
    model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, lcr_samples=3, lcr_every=2)
    x, y = batch(rng)
    model(x, training=True)  # step 0: LCR
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    stripped = lcr_larq.strip_lcr(loaded)
    np.testing.assert_array_equal(stripped(x).numpy(), lcr_larq.strip_lcr(model)(x).numpy())
    assert not any(
        isinstance(la, (layers.ScheduledSampleCount, layers.SampleTap)) for la in stripped.layers
    )
    assert int(schedule_of(loaded).step) == 1
    assert lcr_larq.lcr_layer(loaded).lcr_every == 2
    loaded(x, training=True)
    assert float(loaded.losses[0]) == 0.0  # step 1: none
    loaded(x, training=True)
    assert float(loaded.losses[0]) > 0  # step 2: LCR


def test_schedule_in_a_mirrored_strategy_scope(rng):
    # One replica here (2 replicas: tests/test_distribute.py's every case).
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x, y = batch(rng, 16)
    with strategy.scope():
        model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, lcr_samples=3, lcr_every=2,
                                    power_iterations=1)
        model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss=CE)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(schedule_of(model).step.numpy()) == 4
    assert np.isfinite(history.history["loss"][0]) and history.history["lcr_lip"][0] > 0


def test_run_checkpoint_holds_the_step_count(tmp_path, rng):
    """The resume checkpoint (tf.train.Checkpoint of the model) carries the
    count, so a resumed run keeps its LCR steps where they were."""
    x, _ = batch(rng)
    tf.keras.utils.set_random_seed(7)
    model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, lcr_samples=3, lcr_every=2)
    for _ in range(3):
        model(x, training=True)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    tf.keras.utils.set_random_seed(7)
    resumed = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, lcr_samples=3, lcr_every=2)
    tf.train.Checkpoint(model=resumed).read(path).assert_existing_objects_matched()
    assert int(schedule_of(resumed).step) == 3
    resumed(x, training=True)
    assert float(resumed.losses[0]) == 0.0  # step 3 of every 2nd: none


def test_whole_batch_schedule_with_sigma_metrics(rng):
    """samples=0 (the whole batch) with every=2: the taps cut the whole batch
    on LCR steps; σ_B and σ_F metrics are reported from those steps only."""
    tf.keras.utils.set_random_seed(8)
    bnn = small_bnn()
    every_step = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=0, lcr_every=1)
    every_second = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=0, lcr_every=2,
                                       block_metrics="sigma")
    x, _ = batch(rng)
    every_step(x, training=True)
    lip = float(every_step.losses[0])
    every_second(x, training=True)
    np.testing.assert_allclose(float(every_second.losses[0]), 2 * lip, rtol=1e-5)
    every_second(x, training=True)
    assert float(every_second.losses[0]) == 0.0
    (means,) = [m for m in every_second.metrics if isinstance(m, lcr_larq.metrics.BatchMeans)]
    result = means.result()
    assert {"sigma_b_1", "sigma_f_1", "sigma_ratio_1"} <= result.keys()
    assert float(means.count) == 1  # the step without LCR added nothing
    np.testing.assert_allclose(float(result["lcr_lip"]), lip / 2.0, rtol=1e-5)
